"""The signature as vendors compute it (the README's worked example), and the command line
that registers kiosks and rotates their keys."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from channels.kiosk import KioskStore, metadata, sign
from channels.kiosk.__main__ import main
from channels.kiosk.signing import matches_any
from routing import create_database

README = Path(__file__).resolve().parents[3] / "channels" / "kiosk" / "README.md"
EXAMPLE_BODY = b'{"events":[{"id":"3f2c9a1e-0001","type":"heartbeat","status":"ok"}]}'
EXAMPLE_SIGNATURE = "sha256=ae4698400dfdaf25e713228829ff5ea7ae9913032d313f96dfd22a7b912a3a92"


def test_the_readme_worked_example_is_what_the_server_computes() -> None:
    assert sign("demo-secret-do-not-use", "1772420400", EXAMPLE_BODY) == EXAMPLE_SIGNATURE
    readme = README.read_text(encoding="utf-8")
    assert EXAMPLE_SIGNATURE in readme and EXAMPLE_BODY.decode() in readme


def test_a_signature_matches_either_active_key_but_not_a_changed_body() -> None:
    good = sign("new-key", "1772420400", EXAMPLE_BODY)
    assert matches_any(["old-key", "new-key"], "1772420400", EXAMPLE_BODY, good)
    assert matches_any(["old-key", "new-key"], "1772420400", EXAMPLE_BODY, good.upper())
    assert not matches_any(["old-key"], "1772420400", EXAMPLE_BODY, good)
    assert not matches_any(["new-key"], "1772420401", EXAMPLE_BODY, good)
    assert not matches_any(["new-key"], "1772420400", EXAMPLE_BODY + b" ", good)
    assert not matches_any([], "1772420400", EXAMPLE_BODY, good)


def test_the_command_line_registers_rotates_and_disables_kiosks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'kiosk.db'}"

    async def create() -> None:
        db = create_database(url)
        async with db.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        await db.dispose()

    asyncio.run(create())

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["--database-url", url, *args])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = run("add", "bkk-dusit-01", "--name", "ตู้ 1", "--location", "เขตดุสิต")
    assert code == 0
    first = json.loads(out)
    assert first["device_id"] == "bkk-dusit-01" and len(first["secret"]) >= 40
    code, _, err = run("add", "bkk-dusit-01", "--name", "again", "--location", "x")
    assert code == 1 and "already registered" in err
    code, _, err = run("add", "a kiosk with spaces", "--name", "x", "--location", "x")
    assert code == 1 and "device id" in err
    second = json.loads(run("add-key", "bkk-dusit-01")[1])
    assert run("add-key", "bkk-dusit-01")[0] == 1  # a third active key is refused
    assert run("retire-key", "bkk-dusit-01", first["key_id"])[0] == 0
    assert run("disable", "bkk-dusit-01")[0] == 0
    devices_file = tmp_path / "devices.yaml"
    devices_file.write_text("devices:\n  - {id: bkk-dusit-01, name: ตู้ 1, location: เขตดุสิต}\n"
                            "  - {id: cnx-02, name: ตู้เชียงใหม่, location: ศาลากลาง}\n",
                            encoding="utf-8")
    imported = json.loads(run("import", str(devices_file))[1])
    assert [k["device_id"] for k in imported] == ["cnx-02"]
    code, out, _ = run("list")
    listing = {d["id"]: d for d in json.loads(out)}
    assert listing["bkk-dusit-01"]["enabled"] is False
    assert listing["bkk-dusit-01"]["active_keys"] == [second["key_id"]]
    assert first["secret"] not in out and second["secret"] not in out

    async def secrets() -> tuple[bool, list[str]] | None:
        db = create_database(url)
        try:
            return await KioskStore(db).secrets_of("bkk-dusit-01")
        finally:
            await db.dispose()

    assert asyncio.run(secrets()) == (False, [second["secret"]])
