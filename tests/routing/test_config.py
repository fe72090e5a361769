"""Broken configuration stops start-up with the file, the line and what is wrong."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from routing import ConfigError, load_settings
from tests.conftest import CONFIG_DIR, ROOT


@pytest.fixture
def config_copy(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, target)
    return target


def break_file(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def line_of(path: Path, fragment: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if fragment in line)


def test_the_shipped_configuration_loads() -> None:
    settings = load_settings(CONFIG_DIR)
    assert "general" in settings.queues and "id_card" in settings.categories


def test_a_workflow_naming_an_unknown_queue_is_refused_with_its_line(config_copy: Path) -> None:
    path = config_copy / "workflows.yaml"
    break_file(path, "      - queue: tax_fines", "      - queue: taxes")
    with pytest.raises(ConfigError) as caught:
        load_settings(config_copy)
    assert caught.value.path == str(path)
    assert caught.value.line == line_of(path, "queue: taxes")
    assert "unknown queue 'taxes'" in str(caught.value)


def test_a_broken_expression_is_refused_with_its_line(config_copy: Path) -> None:
    path = config_copy / "workflows.yaml"
    break_file(path, "when: \"queue == 'complaints' or category == 'complaint'\"",
               "when: \"category == = 'complaint'\"")
    with pytest.raises(ConfigError) as caught:
        load_settings(config_copy)
    assert caught.value.line == line_of(path, "category == = ")
    assert "syntax error" in str(caught.value)


def test_an_expression_that_calls_code_is_refused(config_copy: Path) -> None:
    path = config_copy / "queues.yaml"
    break_file(path, "agents: \"skills.tax >= 1\"", "agents: \"__import__('os').system('id')\"")
    with pytest.raises(ConfigError, match="Call is not allowed"):
        load_settings(config_copy)


def test_a_wrong_type_is_refused_with_the_field_and_line(config_copy: Path) -> None:
    path = config_copy / "queues.yaml"
    break_file(path, "reservation_timeout: 20", "reservation_timeout: soon")
    with pytest.raises(ConfigError) as caught:
        load_settings(config_copy)
    assert caught.value.line == line_of(path, "reservation_timeout: soon")
    assert "channels.voice.reservation_timeout" in str(caught.value)


def test_an_unknown_field_is_refused(config_copy: Path) -> None:
    path = config_copy / "queues.yaml"
    break_file(path, "    hours: office\n    strategy", "    hours: office\n    colour: red\n    strategy")
    with pytest.raises(ConfigError) as caught:
        load_settings(config_copy)
    assert caught.value.line == line_of(path, "colour: red")
    assert "Extra inputs are not permitted" in str(caught.value)


def test_invalid_yaml_is_refused_with_its_line(config_copy: Path) -> None:
    path = config_copy / "catalogue.yaml"
    path.write_text("categories:\n  - {code: x, name: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(config_copy)
    assert caught.value.line is not None and "YAML syntax error" in str(caught.value)


def test_a_duplicate_key_is_refused(config_copy: Path) -> None:
    path = config_copy / "departments.yaml"
    path.write_text("departments: []\ndepartments: []\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="duplicate key") as caught:
        load_settings(config_copy)
    assert caught.value.line == 2


def test_opening_hours_that_end_before_they_start_are_refused(config_copy: Path) -> None:
    break_file(config_copy / "queues.yaml", 'mon: ["08:30-16:30"]', 'mon: ["16:30-08:30"]')
    with pytest.raises(ConfigError, match="ends before it starts"):
        load_settings(config_copy)


def test_start_up_stops_with_the_error_on_broken_configuration(config_copy: Path) -> None:
    break_file(config_copy / "workflows.yaml", "      - queue: tax_fines", "      - queue: taxes")
    result = subprocess.run(
        [sys.executable, "-m", "onestop", "run"], cwd=ROOT, capture_output=True, text=True,
        env={"ONESTOP_CONFIG_DIR": str(config_copy), "PATH": "/usr/bin:/bin"}, timeout=60,
    )
    assert result.returncode == 2
    assert "workflows.yaml:" in result.stderr and "unknown queue 'taxes'" in result.stderr
