"""The hotline's menus as data (`menus.yaml`): schema, loading and cross-checks.

Every mistake raises `routing.ConfigError` naming the file, the line (from the YAML
node marks) and what is wrong, like the core's own configuration files.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from routing import ConfigSource

MENUS_FILE = Path(__file__).resolve().parent / "menus.yaml"

Language = Literal["th", "en"]
Action = Literal["menu", "language", "agent", "case_status", "office_hours", "locations",
                 "faq", "voicemail", "repeat", "back"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(_Strict):
    """Something said to the caller, in Thai and in English."""

    th: str = Field(min_length=1)
    en: str = Field(min_length=1)

    def in_(self, language: str) -> str:
        return self.en if language == "en" else self.th


class SpeechWords(_Strict):
    th: list[str] = Field(default_factory=list)
    en: list[str] = Field(default_factory=list)

    def in_(self, language: str) -> list[str]:
        return self.en if language == "en" else self.th


class Voice(_Strict):
    """How `<Say>` speaks a language and which language speech recognition listens for."""

    language: str = Field(pattern=r"^[a-z]{2}-[A-Z]{2}$")
    voice: str | None = None
    speech_language: str = Field(pattern=r"^[a-z]{2}-[A-Z]{2}$")


class Option(_Strict):
    key: str = Field(pattern=r"^[0-9*#]$")
    label: Text
    speech: SpeechWords = Field(default_factory=SpeechWords)
    action: Action
    target: str | None = None
    queue: str | None = None
    category: str | None = None


class Menu(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,30}$")
    prompt: Text
    options: list[Option] = Field(min_length=1)

    def option(self, key: str) -> Option | None:
        return next((o for o in self.options if o.key == key), None)


class Office(_Strict):
    name: Text
    address: Text
    hours: Text


class MenusFile(_Strict):
    start: str
    gather_timeout: int = Field(default=6, ge=1, le=60)
    max_failures: int = Field(default=3, ge=1, le=10)
    hours: str = "office"
    wait_announce_seconds: int = Field(default=30, ge=5, le=600)
    voices: dict[Language, Voice]
    menus: list[Menu] = Field(min_length=1)
    offices: list[Office] = Field(default_factory=list)

    def menu(self, menu_id: str) -> Menu | None:
        return next((m for m in self.menus if m.id == menu_id), None)

    def voice(self, language: str) -> Voice:
        return self.voices.get("en" if language == "en" else "th") or self.voices["th"]


def load_menus(path: Path = MENUS_FILE, *, queues: Collection[str] | None = None,
               categories: Collection[str] | None = None,
               hours: Collection[str] | None = None) -> MenusFile:
    """Load and check the menus; `queues`, `categories` and `hours` (when given) are the
    names the routing configuration knows, so a menu cannot send callers nowhere."""
    source = ConfigSource.load(path, MenusFile)
    menus: MenusFile = source.model
    error = source.error
    if "th" not in menus.voices:
        raise error(("voices",), "voices: Thai (th) is required; callers hear Thai first")
    ids: dict[str, int] = {}
    for i, menu in enumerate(menus.menus):
        if menu.id in ids:
            raise error(("menus", i, "id"), f"menus.{i}.id: menu {menu.id!r} defined twice")
        ids[menu.id] = i
    if menus.start not in ids:
        raise error(("start",), f"start: unknown menu {menus.start!r}")
    if hours is not None and menus.hours not in hours:
        raise error(("hours",), f"hours: unknown business hours {menus.hours!r}")
    for i, menu in enumerate(menus.menus):
        keys: set[str] = set()
        for j, option in enumerate(menu.options):
            loc = ("menus", i, "options", j)
            where = f"menus.{i}.options.{j} ({menu.id}, key {option.key})"
            if option.key in keys:
                raise error((*loc, "key"), f"{where}: key used twice in this menu")
            keys.add(option.key)
            if option.action in ("menu", "language") and option.target not in ids:
                raise error((*loc, "target"),
                            f"{where}: action {option.action} needs a known target menu, "
                            f"got {option.target!r}")
            if queues is not None and option.queue and option.queue not in queues:
                raise error((*loc, "queue"), f"{where}: unknown queue {option.queue!r}")
            if categories is not None and option.category and option.category not in categories:
                raise error((*loc, "category"), f"{where}: unknown category {option.category!r}")
    return menus
