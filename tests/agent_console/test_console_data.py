"""The console's data files: canned responses and wrap-up codes are checked at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_console.data import DataFileError, canned_responses, wrap_codes


def test_the_shipped_canned_responses_and_wrap_codes_are_valid_and_bilingual() -> None:
    canned = canned_responses()
    assert {c.id for c in canned} >= {"greeting", "closing"}
    assert all(c.body.th and c.body.en for c in canned)
    assert "informed" in {w.code for w in wrap_codes()}


def test_a_canned_response_with_an_unknown_variable_names_the_file_and_the_variable(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "canned.yaml"
    bad.write_text("responses:\n  - id: hi\n    title: {th: ทัก, en: Hi}\n"
                   "    body: {th: 'สวัสดี {citizen}', en: 'Hello {citizen}'}\n",
                   encoding="utf-8")
    with pytest.raises(DataFileError) as error:
        canned_responses(bad)
    assert "canned.yaml" in str(error.value) and "citizen" in str(error.value)


def test_a_wrap_code_with_an_unknown_field_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "wrapcodes.yaml"
    bad.write_text("codes:\n  - {code: ok, name: {th: ได้, en: OK}, colour: red}\n",
                   encoding="utf-8")
    with pytest.raises(DataFileError, match="colour"):
        wrap_codes(bad)
