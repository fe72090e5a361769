"""The console's data files: canned responses and wrap-up codes, validated at start-up.

The packaged `canned.yaml` holds the defaults. Administrators edit canned responses on the
admin screen; their edits are saved, validated, to `<data dir>/console/canned.yaml` (written
atomically: a temporary file, fsync, rename), which then replaces the packaged file on
every node that shares the data directory (`use_canned_file`)."""

from __future__ import annotations

import os
import string
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

HERE = Path(__file__).resolve().parent
CANNED_FILE = HERE / "canned.yaml"
WRAP_FILE = HERE / "wrapcodes.yaml"
VARIABLES = frozenset({"citizen_name", "case_number", "agent_name"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Words(_Strict):
    th: str = Field(min_length=1)
    en: str = Field(min_length=1)


class Canned(_Strict):
    id: str = Field(pattern=r"^[a-z0-9_]{1,40}$")
    title: Words
    body: Words

    @field_validator("body")
    @classmethod
    def known_variables(cls, body: Words) -> Words:
        for text in (body.th, body.en):
            names = {name for _, name, _, _ in string.Formatter().parse(text) if name}
            unknown = names - VARIABLES
            if unknown:
                raise ValueError(f"unknown variables {sorted(unknown)}; use {sorted(VARIABLES)}")
        return body


class CannedFile(_Strict):
    responses: list[Canned]


class WrapCode(_Strict):
    code: str = Field(pattern=r"^[a-z0-9_]{1,40}$")
    name: Words


class WrapFile(_Strict):
    codes: list[WrapCode]


class DataFileError(Exception):
    """A data file is wrong: the message names the file and the problem."""


M = TypeVar("M", bound=BaseModel)


def _load(path: Path, model: type[M]) -> M:
    try:
        return model.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise DataFileError(f"{path.name}: {exc}") from exc


_canned_override: Path | None = None


def use_canned_file(path: Path | None) -> None:
    """Read canned responses from `path` when it exists (the administrators' edits)."""
    global _canned_override
    _canned_override = path
    _load_canned.cache_clear()


def canned_file() -> Path:
    """The file canned responses are read from now."""
    if _canned_override is not None and _canned_override.is_file():
        return _canned_override
    return CANNED_FILE


def canned_responses(path: Path | None = None) -> tuple[Canned, ...]:
    return _load_canned(path or canned_file())


@lru_cache(maxsize=4)
def _load_canned(path: Path) -> tuple[Canned, ...]:
    return tuple(_load(path, CannedFile).responses)


def save_canned(responses: list[Canned]) -> Path:
    """Validate and write every canned response to the override file, atomically."""
    if _canned_override is None:
        raise DataFileError("canned responses cannot be edited: no data directory is set")
    model = CannedFile(responses=responses)  # validated again, as a whole
    if len({c.id for c in responses}) != len(responses):
        raise DataFileError("two canned responses have the same id")
    data = model.model_dump()
    write_yaml_atomically(_canned_override, data, header="# Canned responses, edited on the "
                          "admin screen (the packaged defaults are agent_console/canned.yaml).\n")
    _load_canned.cache_clear()
    return _canned_override


def write_yaml_atomically(path: Path, data: Any, header: str = "") -> None:
    """Write YAML so that a reader sees the old file or the new one, never half of it."""
    text = header + yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100)
    write_text_atomically(path, text)


def write_text_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@lru_cache(maxsize=4)
def wrap_codes(path: Path = WRAP_FILE) -> tuple[WrapCode, ...]:
    return tuple(_load(path, WrapFile).codes)
