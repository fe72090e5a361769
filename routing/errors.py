"""Errors the core raises; each says what was wrong and where."""

from __future__ import annotations


class OneStopError(Exception):
    """Base class of every error the core raises on purpose."""


class InvalidIdentity(OneStopError, ValueError):
    """An identifier that is not what it claims to be (bad checksum, impossible number…)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"invalid {kind}: {reason}")
        self.kind = kind
        self.reason = reason


class ConfigError(OneStopError):
    """A configuration file that cannot be used: names the file, the line and the problem."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line
        self.message = message


class NotFound(OneStopError, LookupError):
    """The thing asked for does not exist."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} {key!r} not found")
        self.kind = kind
        self.key = key


class Conflict(OneStopError):
    """The request is valid but the current state does not allow it."""


class Forbidden(OneStopError):
    """The caller may not do this."""


class Unavailable(OneStopError):
    """A part the request needs is not answering for the moment (in a cluster: no node
    runs the router while another takes over); the same request may be tried again."""

    retry_after = 5
