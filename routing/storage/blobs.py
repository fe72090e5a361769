"""Files that come with messages (raw emails, attachments, recordings), stored by content.

The default store is a directory; a file is written to a temporary name, flushed to disk
and renamed, so a stored reference always points at a whole file. Several app nodes
need a shared directory (or an object store with the same two calls).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from pathlib import Path
from typing import Protocol

_REF = re.compile(r"^sha256:[0-9a-f]{64}$")


class BlobStore(Protocol):
    async def put(self, data: bytes) -> str: ...

    async def get(self, ref: str) -> bytes: ...


class FileBlobStore:
    """Content-addressed files under `root` (the same bytes are stored once)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    async def put(self, data: bytes) -> str:
        """Store `data` durably; return its reference (``sha256:<hex>``)."""
        digest = hashlib.sha256(data).hexdigest()
        await asyncio.to_thread(self._write, digest, data)
        return f"sha256:{digest}"

    async def get(self, ref: str) -> bytes:
        """The bytes stored under `ref` (raises KeyError for an unknown reference)."""
        if not _REF.match(ref):
            raise KeyError(ref)
        path = self._path(ref.split(":", 1)[1])
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise KeyError(ref) from None

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def _write(self, digest: str, data: bytes) -> None:
        path = self._path(digest)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
