"""The menus file: checked at start-up, every mistake named with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.menus import MENUS_FILE, load_menus
from routing import ConfigError, Settings


def test_the_shipped_menus_are_valid_against_the_routing_configuration(
    settings: Settings,
) -> None:
    menus = load_menus(queues=settings.queues, categories=settings.categories,
                       hours=settings.hours)
    start = menus.menu(menus.start)
    assert start is not None and start.option("0") is not None
    assert next(iter(menus.voices)) == "th"


@pytest.mark.parametrize(
    ("old", "new", "line_of", "fragment"),
    [
        ("target: offices", "target: nowhere", "target: nowhere", "needs a known target"),
        ('key: "2"', 'key: "1"', 'key: "1"\n        label: {th: "เวลา', "key used twice"),
        ("queue: tax_fines", "queue: taxes", "queue: taxes", "unknown queue 'taxes'"),
        ("max_failures: 3 ", "max_failures: 0 ", "max_failures: 0", "greater than or equal"),
        ("action: faq", "action: dance", "action: dance", "action"),
        ("hours: office   ", "hours: lunch    ", "hours: lunch", "unknown business hours"),
    ],
)
def test_a_mistake_in_the_menus_names_the_file_the_line_and_the_problem(
    tmp_path: Path, settings: Settings, old: str, new: str, line_of: str, fragment: str,
) -> None:
    text = MENUS_FILE.read_text(encoding="utf-8")
    assert old in text
    broken = text.replace(old, new, 1)
    path = tmp_path / "menus.yaml"
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_menus(path, queues=settings.queues, categories=settings.categories,
                   hours=settings.hours)
    expected_line = broken[: broken.index(line_of)].count("\n") + 1
    assert caught.value.path == str(path)
    assert caught.value.line == expected_line, str(caught.value)
    assert fragment in caught.value.message


def test_broken_yaml_and_duplicate_keys_are_reported_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "menus.yaml"
    path.write_text("start: main\nstart: other\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="duplicate key 'start'") as caught:
        load_menus(path)
    assert caught.value.line == 2
    path.write_text("start: [main\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="YAML syntax error"):
        load_menus(path)
