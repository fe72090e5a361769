"""Builds, trains and runs the Rasa server that backs the OneStop bot.

Rasa 3.6 lives in its own Python 3.10 venv (``bot/.venv``), so the app never imports it: this
module drives it as subprocesses.

- ``ensure_venv()`` runs ``bot/scripts/ensure-venv.sh`` (idempotent).
- ``train_if_needed()`` hashes the Rasa project (config, domain, data, custom components and
  the lock file — not ``eval/``) and trains only when
  ``${ONESTOP_CACHE_DIR:-<repo>/.cache}/rasa-models/<hash>.tar.gz`` is missing.
- ``start()`` runs ``rasa run --enable-api`` on ``host:port`` and waits until ``GET /status``
  reports a loaded model; ``stop()`` terminates it (SIGTERM, then SIGKILL).

Custom actions are served by the app at ``http://127.0.0.1:$ONESTOP_HTTP_PORT/bot/actions/webhook``
(see ``bot/actions.py``); the manager passes that port and the shared action token to Rasa.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import secrets
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from types import TracebackType

import aiohttp

log = logging.getLogger(__name__)

BOT_DIR = Path(__file__).resolve().parent
REPO_DIR = BOT_DIR.parent
PROJECT_DIR = BOT_DIR / "rasa"
# What decides the model: everything training reads, plus the exact Rasa/TensorFlow versions.
_HASHED = ("config.yml", "domain.yml", "data", "components")


class BotSetupError(RuntimeError):
    """The Rasa venv could not be built, the model could not be trained or the server failed."""


def default_cache_dir() -> Path:
    """``$ONESTOP_CACHE_DIR`` or ``<repo>/.cache``."""
    return Path(os.environ.get("ONESTOP_CACHE_DIR") or REPO_DIR / ".cache")


def project_hash(project_dir: Path = PROJECT_DIR, lock_file: Path | None = None) -> str:
    """Content hash of the Rasa project: file paths and bytes, in a stable order."""
    digest = hashlib.sha256()
    for path in _project_files(project_dir):
        digest.update(str(path.relative_to(project_dir)).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    lock = lock_file if lock_file is not None else project_dir.parent / "requirements.lock"
    if lock.exists():
        digest.update(lock.read_bytes())
    return digest.hexdigest()[:20]


def _project_files(project_dir: Path) -> Iterator[Path]:
    for name in _HASHED:
        path = project_dir / name
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
            )


class RasaManager:
    """Owns one Rasa server subprocess (and the model it serves)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 5005,
        action_port: int | None = None,
        action_token: str | None = None,
        api_token: str | None = None,
        cache_dir: Path | None = None,
        venv_dir: Path | None = None,
        project_dir: Path = PROJECT_DIR,
        log_dir: Path | None = None,
    ) -> None:
        """``action_port``: the app's HTTP port serving ``/bot/actions/webhook``
        (default ``$ONESTOP_HTTP_PORT`` or 8080). ``action_token``/``api_token`` default to
        fresh random secrets; give the same ``action_token`` to ``bot.actions.ActionServer``
        and the ``api_token`` to ``bot.client.RasaClient``."""
        self.host = host
        self.port = port
        self.action_port = action_port or int(os.environ.get("ONESTOP_HTTP_PORT") or 8080)
        self.action_token = action_token or secrets.token_urlsafe(24)
        self.api_token = api_token or secrets.token_urlsafe(24)
        self.cache_dir = cache_dir or default_cache_dir()
        self.venv_dir = venv_dir or Path(os.environ.get("BOT_VENV") or BOT_DIR / ".venv")
        self.project_dir = project_dir
        self.log_dir = log_dir or REPO_DIR / "var" / "bot"
        self._process: asyncio.subprocess.Process | None = None
        self._log_file: int | None = None

    @property
    def base_url(self) -> str:
        """The server's URL, e.g. ``http://127.0.0.1:5005``."""
        return f"http://{self.host}:{self.port}"

    @property
    def rasa(self) -> Path:
        """The ``rasa`` executable inside the bot venv."""
        return self.venv_dir / "bin" / "rasa"

    @property
    def models_dir(self) -> Path:
        """Where trained models are kept, one per project hash."""
        return self.cache_dir / "rasa-models"

    def model_path(self) -> Path:
        """The model file for the project as it is now."""
        return self.models_dir / f"{project_hash(self.project_dir)}.tar.gz"

    async def ensure_venv(self) -> None:
        """Builds or refreshes ``bot/.venv`` from ``bot/requirements.lock``."""
        script = BOT_DIR / "scripts" / "ensure-venv.sh"
        env = {
            **os.environ,
            "BOT_VENV": str(self.venv_dir),
            "ONESTOP_CACHE_DIR": str(self.cache_dir),
        }
        await self._run([str(script)], env=env, what="ensure-venv", limit=1800)

    async def train_if_needed(self) -> Path:
        """Returns the model for the current project, training it first if it is missing."""
        target = self.model_path()
        if target.exists():
            return target
        self.models_dir.mkdir(parents=True, exist_ok=True)
        async with _file_lock(self.models_dir / ".train.lock"):
            if target.exists():  # another process trained it while we waited
                return target
            started = time.monotonic()
            with tempfile.TemporaryDirectory(dir=self.models_dir, prefix=".training-") as tmp:
                await self._run(
                    [
                        str(self.rasa),
                        "train",
                        "--config",
                        "config.yml",
                        "--domain",
                        "domain.yml",
                        "--data",
                        "data",
                        "--out",
                        tmp,
                        "--fixed-model-name",
                        target.name.removesuffix(".tar.gz"),
                    ],
                    env=self._rasa_env(),
                    what="rasa train",
                    limit=1800,
                )
                os.replace(Path(tmp) / target.name, target)
            log.info("trained %s in %.0f s", target.name, time.monotonic() - started)
        return target

    async def start(self, model: Path | None = None, ready_within: float = 180.0) -> None:
        """Starts ``rasa run`` and waits until its model is loaded."""
        if self._process is not None:
            return
        model = model or await self.train_if_needed()
        if not model.is_file():
            raise BotSetupError(f"no model file at {model}")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        endpoints = self.project_dir / "endpoints.yml"
        self._log_file = os.open(
            self.log_dir / f"rasa-{self.port}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644
        )
        self._process = await asyncio.create_subprocess_exec(
            str(self.rasa),
            "run",
            "--enable-api",
            "--interface",
            self.host,
            "--port",
            str(self.port),
            "--model",
            str(model.resolve()),
            "--endpoints",
            str(endpoints),
            "--credentials",
            str(self.project_dir / "credentials.yml"),
            "--auth-token",
            self.api_token,
            cwd=self.project_dir,
            env=self._rasa_env(),
            stdout=self._log_file,
            stderr=self._log_file,
            start_new_session=True,
        )
        try:
            await self._wait_ready(ready_within)
        except BaseException:
            await self.stop()
            raise

    async def stop(self, grace: float = 10.0) -> None:
        """Stops the server: SIGTERM to its process group, SIGKILL after ``grace`` seconds."""
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        if self._log_file is not None:
            os.close(self._log_file)
            self._log_file = None

    async def __aenter__(self) -> RasaManager:
        """Starts the server (training first if needed)."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stops the server."""
        await self.stop()

    # --- helpers ---

    def _rasa_env(self) -> dict[str, str]:
        env: Mapping[str, str] = os.environ
        return {
            **env,
            # Custom components (components.thai_tokenizer) are imported from the project dir.
            "PYTHONPATH": str(self.project_dir),
            # Rasa's training cache defaults to ./.rasa inside the project; keep it in the cache.
            "RASA_CACHE_DIRECTORY": str(self.cache_dir / "rasa-train-cache"),
            "RASA_TELEMETRY_ENABLED": "false",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
            "ONESTOP_HTTP_PORT": str(self.action_port),
            "ONESTOP_BOT_ACTION_TOKEN": self.action_token,
        }

    async def _run(self, argv: list[str], *, env: dict[str, str], what: str, limit: float) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{what.replace(' ', '-')}.log"
        with log_path.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=self.project_dir,
                env=env,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                code = await asyncio.wait_for(process.wait(), limit)
            except TimeoutError:
                os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
                raise BotSetupError(f"{what} took over {limit:.0f} s; log: {log_path}") from None
        if code != 0:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise BotSetupError(f"{what} failed with exit code {code}; log: {log_path}\n{tail}")

    async def _wait_ready(self, within: float) -> None:
        deadline = time.monotonic() + within
        url = f"{self.base_url}/status"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while time.monotonic() < deadline:
                if self._process is None or self._process.returncode is not None:
                    raise BotSetupError(f"rasa run exited early; see {self.log_dir}")
                try:
                    async with session.get(url, params={"token": self.api_token}) as response:
                        if response.status == 200 and (await response.json()).get("model_file"):
                            return
                except (TimeoutError, aiohttp.ClientError, ValueError):
                    pass
                await asyncio.sleep(0.5)
        raise BotSetupError(f"rasa run not ready after {within:.0f} s; see {self.log_dir}")


@contextlib.asynccontextmanager
async def _file_lock(path: Path) -> AsyncIterator[None]:
    # Training is serialized across processes (two test sessions at once); the blocking flock
    # waits in a thread so the event loop keeps running.
    with path.open("w") as handle:
        await asyncio.to_thread(fcntl.flock, handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove_stale_models(cache_dir: Path | None = None, keep: int = 3) -> None:
    """Deletes all but the ``keep`` newest cached models."""
    models = sorted(
        (cache_dir or default_cache_dir()).joinpath("rasa-models").glob("*.tar.gz"),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for stale in models[keep:]:
        stale.unlink(missing_ok=True)
