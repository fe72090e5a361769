"""Command line: `python -m onestop run|migrate|check-config|seed-demo`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace

from aiohttp import web

import routing
from onestop.app import PARTS, build_app
from onestop.database import migrate
from onestop.demo import seed_demo
from onestop.logs import configure_logging
from onestop.settings import AppSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="onestop", description="OneStop service desk")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the service desk")
    run.add_argument("--demo", action="store_true", help="load demo staff and print logins")
    sub.add_parser("migrate", help="bring the database schema up to date")
    sub.add_parser("check-config", help="validate the configuration files and exit")
    sub.add_parser("seed-demo", help="create the demo staff")
    args = parser.parse_args(argv)
    settings = AppSettings.from_env()
    if getattr(args, "demo", False):
        settings = replace(settings, demo=True)
    configure_logging(settings.log_level)
    try:
        rsettings = routing.load_settings(settings.config_dir)
    except routing.ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(f"configuration OK: {len(rsettings.queues)} queues, "
              f"{len(rsettings.categories)} categories, "
              f"{len(rsettings.workflow.filters)} workflow filters")
        return 0
    if args.command in ("migrate", "seed-demo") or (args.command == "run" and args.demo):
        asyncio.run(_prepare(settings, rsettings, demo=args.command != "migrate"))
        if args.command != "run":
            return 0
    app = build_app(settings, rsettings)
    _banner(settings, demo=args.demo)
    web.run_app(app, host=settings.host, port=settings.http_port, print=None,
                access_log=None, shutdown_timeout=5)
    print("OneStop stopped.")
    return 0


async def _prepare(settings: AppSettings, rsettings: routing.Settings, *, demo: bool) -> None:
    db = routing.create_database(settings.database_url)
    try:
        await migrate(db)
        if demo:
            center = routing.ContactCenter(db, rsettings)
            agents = await seed_demo(center)
            print("Demo logins (user / password / role):")
            for agent in agents:
                print(f"  {agent.username:<12} {agent.password:<18} {', '.join(agent.roles)}")
    finally:
        await db.dispose()


def _banner(settings: AppSettings, *, demo: bool) -> None:
    base = f"http://{'localhost' if settings.host in ('127.0.0.1', '0.0.0.0') else settings.host}"  # noqa: S104
    base += f":{settings.http_port}"
    print(f"\nOneStop is running{' with demo data' if demo else ''}. Open:")
    print(f"  {'all parts':<36} {base}/about")
    for part in PARTS:
        print(f"  {part['en']:<36} {base}{part['href']}")
    print(f"  {'database':<36} {settings.database_url.split('@')[-1]}")
    print("Stop with Ctrl-C.\n", flush=True)


if __name__ == "__main__":
    sys.exit(main())
