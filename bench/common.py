"""Shared pieces: ports, percentiles, RSS from /proc, the app in its own process."""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CACHE = ROOT / ".cache" / "bench"
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of `values` (nearest rank); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))])


def rss_mb(pid: int) -> float:
    """Resident memory of a process (VmRSS from /proc), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc/<pid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def raise_nofile() -> int:
    """Raise this process's open-file limit to its hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class PeakRss:
    """Samples a process's RSS every 0.2 s in a thread; `.peak` is the highest seen."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            value = rss_mb(self.pid)
            if value == value:  # not NaN
                self.peak = max(self.peak, value)

    def __enter__(self) -> PeakRss:
        self.peak = rss_mb(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)


async def wait_http(url: str, limit: float = 60.0, proc: subprocess.Popen[Any] | None = None
                    ) -> None:
    deadline = time.monotonic() + limit
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                    if r.status < 500:
                        return
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {limit:.0f} s")


def stop_process(proc: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    """Stop a process we started (SIGTERM, then SIGKILL), by its own handle."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class AppProcess:
    """`python -m onestop run` in its own process, on free ports and a temporary data dir.

    The configuration is a copy of `config/` with `edits` applied (file name → function of
    the text), so a benchmark can, for instance, switch email acknowledgements off.
    """

    def __init__(self, *, bot: str = "off", env: dict[str, str] | None = None,
                 edits: dict[str, Any] | None = None, smtp: bool = True,
                 profile: Path | None = None) -> None:
        self.profile = profile
        self.tmp = Path(tempfile.mkdtemp(prefix="onestop-bench-"))
        self.port = free_port()
        self.smtp_port = free_port() if smtp else -1
        self.url = f"http://127.0.0.1:{self.port}"
        config = self.tmp / "config"
        shutil.copytree(ROOT / "config", config)
        for name, edit in (edits or {}).items():
            path = config / name
            path.write_text(edit(path.read_text()))
        self.env = {
            **os.environ,
            "ONESTOP_BOT": bot, "ONESTOP_DATA_DIR": str(self.tmp / "data"),
            "ONESTOP_CONFIG_DIR": str(config), "ONESTOP_HTTP_PORT": str(self.port),
            "ONESTOP_SMTP_PORT": str(self.smtp_port), "ONESTOP_LOG_LEVEL": "WARNING",
            "ONESTOP_PUBLIC_URL": self.url, "PYTHONPATH": str(ROOT),
            **(env or {}),
        }
        (self.tmp / "data").mkdir()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.tmp / "app.log"

    @property
    def database_url(self) -> str:
        return f"sqlite+aiosqlite:///{self.tmp / 'data' / 'onestop.db'}"

    def migrate(self) -> None:
        subprocess.run([PY, "-m", "onestop", "migrate"], env=self.env, cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)

    async def start(self) -> None:
        # The server must hold thousands of sockets: raise its open-file limit too.
        def preexec() -> None:
            _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

        with self.log.open("wb") as log:
            prefix = [PY, "-m", "cProfile", "-o", str(self.profile)] if self.profile else [PY]
            argv = [*prefix, "-m", "onestop", "run"]
            self.proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once
                argv, env=self.env, cwd=ROOT, stdout=log, stderr=log, preexec_fn=preexec)
        await wait_http(self.url + "/healthz", proc=self.proc)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        shutil.rmtree(self.tmp, ignore_errors=True)


class ScriptProcess:
    """A baseline server (`python bench/peers/<script> PORT`) in its own process."""

    def __init__(self, script: str, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.argv = [PY, str(ROOT / "bench" / "peers" / script), str(self.port), *args]
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        def preexec() -> None:
            _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

        self.proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once
            self.argv, cwd=ROOT, preexec_fn=preexec,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await wait_http(self.url + "/healthz", proc=self.proc)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
