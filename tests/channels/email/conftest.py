"""Fixtures for the email channel: real Dovecot, real corpora, local SMTP servers."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from channels.email.testing.dovecot import DovecotServer, start_dovecot
from channels.email.testing.memory import MemoryImapState, MemorySink
from channels.email.testing.relay import RecordingRelay

REPO = Path(__file__).resolve().parents[3]


CPYTHON_EMAIL_DATA = Path(f"/usr/lib/python3.{sys.version_info.minor}/test/test_email/data")
CORPUS_CACHE = REPO / ".cache" / "corpora"
CHARDET_SDIST = "chardet-5.2.0.tar.gz"


def _apt_install(package: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"{package} is not installed and we are not root to apt-get it")
    subprocess.run(
        ["/usr/bin/apt-get", "install", "-y", "--no-install-recommends", package],
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        check=True,
        capture_output=True,
        timeout=600,
    )


@pytest.fixture(scope="session")
def cpython_email_messages() -> list[Path]:
    """CPython's own email test messages (Debian libpython3.X-testsuite), installed if needed."""
    if not CPYTHON_EMAIL_DATA.is_dir():
        _apt_install(f"libpython3.{sys.version_info.minor}-testsuite")
    messages = sorted(CPYTHON_EMAIL_DATA.glob("msg_*.txt"))
    assert len(messages) >= 40, f"expected CPython's msg_*.txt in {CPYTHON_EMAIL_DATA}"
    return messages


@pytest.fixture(scope="session")
def tis620_texts() -> dict[str, bytes]:
    """chardet's real TIS-620 test documents (Thai web pages), from its sdist in .cache/."""
    CORPUS_CACHE.mkdir(parents=True, exist_ok=True)
    sdist = CORPUS_CACHE / CHARDET_SDIST
    if not sdist.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
             "chardet==5.2.0", "-d", str(CORPUS_CACHE)],
            check=True,
            capture_output=True,
            timeout=300,
        )
    texts: dict[str, bytes] = {}
    with tarfile.open(sdist) as archive:
        for member in archive.getmembers():
            if "/tests/TIS-620/" in member.name and member.isfile():
                handle = archive.extractfile(member)
                assert handle is not None
                texts[member.name.rsplit("/", 1)[1]] = handle.read()
    assert texts, "no TIS-620 samples in the chardet sdist"
    return texts


@pytest.fixture
def dovecot() -> Iterator[DovecotServer]:
    """A private Dovecot (installed with apt-get if missing), stopped after the test."""
    server = start_dovecot()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sink() -> MemorySink:
    """An idempotent in-memory sink."""
    return MemorySink()


@pytest.fixture
def imap_state() -> MemoryImapState:
    """An in-memory IMAP position store (share it between pollers to simulate a restart)."""
    return MemoryImapState()


@pytest.fixture
async def relay() -> AsyncIterator[RecordingRelay]:
    """A recording SMTP relay on a free port of 127.0.0.1."""
    recorder = RecordingRelay()
    await recorder.start()
    try:
        yield recorder
    finally:
        await recorder.stop()
