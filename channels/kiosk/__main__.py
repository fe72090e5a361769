"""Register and manage kiosks from the command line.

    python -m channels.kiosk --database-url URL add DEVICE_ID --name NAME --location PLACE
    python -m channels.kiosk --database-url URL add-key DEVICE_ID      # start a rotation
    python -m channels.kiosk --database-url URL retire-key DEVICE_ID KEY_ID
    python -m channels.kiosk --database-url URL disable DEVICE_ID     # or enable
    python -m channels.kiosk --database-url URL list
    python -m channels.kiosk --database-url URL import devices.yaml   # add what is missing

The URL defaults to $ONESTOP_DATABASE_URL. A new secret is printed once, on stdout;
give it to the kiosk and do not keep it anywhere else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from channels.kiosk.store import KioskStore
from routing import Conflict, NotFound, create_database


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.database_url:
        print("give --database-url or set ONESTOP_DATABASE_URL", file=sys.stderr)
        return 2
    try:
        print(json.dumps(asyncio.run(_run(args)), ensure_ascii=False, indent=2))
    except (Conflict, NotFound, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


async def _run(args: argparse.Namespace) -> Any:
    db = create_database(args.database_url)
    store = KioskStore(db)
    now = datetime.now(UTC)
    try:
        if args.command == "add":
            key = await store.register_device(args.device_id, args.name, args.location, now)
            return {"device_id": key.device_id, "key_id": key.key_id, "secret": key.secret}
        if args.command == "add-key":
            key = await store.add_key(args.device_id, now)
            return {"device_id": key.device_id, "key_id": key.key_id, "secret": key.secret}
        if args.command == "retire-key":
            await store.retire_key(args.device_id, args.key_id, now)
            return {"retired": args.key_id}
        if args.command in ("disable", "enable"):
            await store.set_enabled(args.device_id, args.command == "enable", now)
            return {"device_id": args.device_id, "enabled": args.command == "enable"}
        if args.command == "import":
            return await import_devices(store, Path(args.file), now)
        return [{"id": d.id, "name": d.name, "location": d.location, "enabled": d.enabled,
                 "active_keys": list(d.key_ids),
                 "last_heartbeat_at": d.last_heartbeat_at.isoformat()
                 if d.last_heartbeat_at else None} for d in await store.devices()]
    finally:
        await db.dispose()


async def import_devices(store: KioskStore, path: Path, now: datetime) -> list[dict[str, Any]]:
    """Register the devices listed in a YAML file (``devices: [{id, name, location}]``)
    that are not registered yet; returns the new keys."""
    data = yaml.safe_load(await asyncio.to_thread(path.read_text, encoding="utf-8")) or {}
    entries = data.get("devices") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected 'devices:' with a list of {{id, name, location}}")
    created = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != {"id", "name", "location"}:
            raise ValueError(f"{path}: devices[{i}] must have exactly id, name and location")
        if await store.secrets_of(str(entry["id"])) is not None:
            continue
        key = await store.register_device(str(entry["id"]), str(entry["name"]),
                                          str(entry["location"]), now)
        created.append({"device_id": key.device_id, "key_id": key.key_id,
                        "secret": key.secret})
    return created


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m channels.kiosk",
                                     description="Register and manage OneStop kiosks.")
    parser.add_argument("--database-url", default=os.environ.get("ONESTOP_DATABASE_URL"))
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="register a kiosk and print its first key")
    add.add_argument("device_id")
    add.add_argument("--name", required=True)
    add.add_argument("--location", required=True)
    commands.add_parser("add-key", help="a second key, for a rotation").add_argument("device_id")
    retire = commands.add_parser("retire-key", help="stop accepting a key")
    retire.add_argument("device_id")
    retire.add_argument("key_id")
    commands.add_parser("disable", help="refuse the kiosk").add_argument("device_id")
    commands.add_parser("enable", help="accept the kiosk again").add_argument("device_id")
    commands.add_parser("import", help="register kiosks listed in YAML").add_argument("file")
    commands.add_parser("list", help="kiosks and their status (no secrets)")
    return parser


if __name__ == "__main__":
    sys.exit(main())
