"""The console's data files: canned responses and wrap-up codes, validated at start-up."""

from __future__ import annotations

import string
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

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


@lru_cache(maxsize=4)
def canned_responses(path: Path = CANNED_FILE) -> tuple[Canned, ...]:
    return tuple(_load(path, CannedFile).responses)


@lru_cache(maxsize=4)
def wrap_codes(path: Path = WRAP_FILE) -> tuple[WrapCode, ...]:
    return tuple(_load(path, WrapFile).codes)
