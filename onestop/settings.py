"""Settings from the environment (secrets too: nothing secret lives in files)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class AppSettings:
    """Everything configurable about one app node."""

    host: str = "127.0.0.1"
    http_port: int = 8080
    data_dir: Path = ROOT / "var"
    config_dir: Path = ROOT / "config"
    database_url: str = ""
    public_url: str = ""
    redis_url: str | None = None
    #: Keys and channels of one deployment on a shared Redis start with this.
    redis_prefix: str = "onestop"
    #: This node's name in a cluster: stable across restarts (a node's own Slack outbox
    #: is kept under it). Defaults to host name and HTTP port.
    node_name: str = ""
    rasa_url: str | None = None
    rasa_token: str | None = field(default=None, repr=False)
    elasticsearch_url: str | None = None
    smtp_port: int = 2525
    log_level: str = "INFO"
    demo: bool = False
    #: "managed": the app builds, trains and runs a local Rasa server; "off": no bot
    #: (chats go straight to people). Ignored when `rasa_url` names a server.
    bot: str = "managed"
    secrets: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> AppSettings:
        """Read `ONESTOP_*` variables (and provider secrets) with embedded defaults."""
        env = dict(os.environ if env is None else env)
        data_dir = Path(env.get("ONESTOP_DATA_DIR", str(ROOT / "var")))
        port = _int(env, "ONESTOP_HTTP_PORT", 8080)
        return cls(
            host=env.get("ONESTOP_HOST", "127.0.0.1"),
            http_port=port,
            data_dir=data_dir,
            config_dir=Path(env.get("ONESTOP_CONFIG_DIR", str(ROOT / "config"))),
            database_url=env.get("ONESTOP_DATABASE_URL")
            or f"sqlite+aiosqlite:///{data_dir / 'onestop.db'}",
            public_url=env.get("ONESTOP_PUBLIC_URL", f"http://localhost:{port}"),
            redis_url=env.get("ONESTOP_REDIS_URL") or None,
            redis_prefix=env.get("ONESTOP_REDIS_PREFIX", "onestop"),
            node_name=env.get("ONESTOP_NODE_NAME") or f"{socket.gethostname()}-{port}",
            rasa_url=env.get("ONESTOP_RASA_URL") or None,
            rasa_token=env.get("ONESTOP_RASA_TOKEN") or None,
            elasticsearch_url=env.get("ONESTOP_ELASTICSEARCH_URL") or None,
            smtp_port=_int(env, "ONESTOP_SMTP_PORT", 2525),
            log_level=env.get("ONESTOP_LOG_LEVEL", "INFO").upper(),
            demo=env.get("ONESTOP_DEMO", "") in ("1", "true", "yes"),
            bot=env.get("ONESTOP_BOT", "managed"),
            secrets={k: v for k, v in env.items()
                     if k.startswith(("TWILIO_", "SLACK_")) or k in (
                         "ONESTOP_IMAP_PASSWORD", "ONESTOP_SMTP_RELAY_PASSWORD")},
        )


def _int(env: dict[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, got {value!r}") from None
