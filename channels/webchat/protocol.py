"""The citizen socket's JSON frames (see README.md for the whole protocol).

Client frames are validated here with pydantic (unknown fields and types are refused);
every refusal becomes an `error` frame with a stable `code` the widget translates, and
the socket stays open.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

VISITOR = r"^[A-Za-z0-9_-]{16,64}$"
CLIENT_ID = r"^[A-Za-z0-9_-]{8,64}$"
SESSION = r"^[A-Za-z0-9_-]{8,40}$"


@dataclass(frozen=True)
class Limits:
    """Sizes and rates the socket enforces (all configurable through `setup`)."""

    max_chars: int = 4000
    max_frame_chars: int = 32 * 1024
    #: aiohttp closes the socket (1009) above this; below it, large frames get an error.
    max_socket_message: int = 1024 * 1024
    visitor_burst: int = 10
    visitor_per_second: float = 0.5
    ip_burst: int = 60
    ip_per_second: float = 5.0
    frame_burst: int = 60
    frame_per_second: float = 10.0


class Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Resume(Frame):
    """First frame on every (re)connect: who the visitor is and what they already have."""

    type: Literal["resume"]
    visitor: str = Field(pattern=VISITOR)
    conversation: str | None = Field(default=None, pattern=SESSION)
    after_seq: int = Field(default=0, ge=0)
    language: Literal["th", "en"] = "th"


class Send(Frame):
    """A citizen message; `client_id` makes re-sends idempotent."""

    type: Literal["message"]
    client_id: str = Field(pattern=CLIENT_ID)
    text: str = Field(min_length=1)
    payload: str | None = Field(default=None, max_length=200)


class Ack(Frame):
    """The client has every server message up to `seq`."""

    type: Literal["ack"]
    seq: int = Field(ge=0)


class Typing(Frame):
    type: Literal["typing"]
    active: bool


class Handoff(Frame):
    """The citizen asks for a person."""

    type: Literal["handoff"]


class Rating(Frame):
    type: Literal["rating"]
    score: int = Field(ge=1, le=5)


class Transcript(Frame):
    type: Literal["transcript"]
    email: str = Field(min_length=3, max_length=254)


class Offline(Frame):
    """The offline message form: contact details and the message."""

    type: Literal["offline"]
    client_id: str = Field(pattern=CLIENT_ID)
    name: str = Field(default="", max_length=100)
    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=40)
    text: str = Field(min_length=1)


class End(Frame):
    type: Literal["end"]


class Ping(Frame):
    type: Literal["ping"]


ClientFrame = Annotated[
    Resume | Send | Ack | Typing | Handoff | Rating | Transcript | Offline | End | Ping,
    Field(discriminator="type"),
]
FRAME_TYPES = ("resume", "message", "ack", "typing", "handoff", "rating", "transcript",
               "offline", "end", "ping")
_adapter: TypeAdapter[Any] = TypeAdapter(ClientFrame)


class FrameError(Exception):
    """A client frame we refuse: `code` for the widget, `message` for people."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details

    def frame(self) -> dict[str, Any]:
        return {"type": "error", "code": self.code, "message": self.message, **self.details}


def parse(data: str, limits: Limits) -> Any:
    """Turn one text frame into a client frame model, or raise `FrameError`."""
    if len(data) > limits.max_frame_chars:
        raise FrameError("frame_too_large",
                         f"frame of {len(data)} characters is over the limit of "
                         f"{limits.max_frame_chars}")
    try:
        raw = json.loads(data)
    except ValueError:
        raise FrameError("malformed_json", "the frame is not valid JSON") from None
    if not isinstance(raw, dict):
        raise FrameError("bad_frame", "a frame must be a JSON object")
    kind = raw.get("type")
    if kind not in FRAME_TYPES:
        raise FrameError("unknown_type", f"unknown frame type {str(kind)[:40]!r}",
                         allowed=list(FRAME_TYPES))
    client_id = raw.get("client_id") if isinstance(raw.get("client_id"), str) else None
    extra = {"client_id": client_id[:64]} if client_id else {}
    text = raw.get("text")
    if isinstance(text, str) and len(text) > limits.max_chars:
        raise FrameError("message_too_long",
                         f"a message may have at most {limits.max_chars} characters "
                         f"(this one has {len(text)})", max_chars=limits.max_chars, **extra)
    try:
        return _adapter.validate_python(raw)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'frame'}: "
            + ("unknown field" if e["type"] == "extra_forbidden" else e["msg"])
            for e in exc.errors(include_url=False, include_input=False)
        ]
        code = "unknown_field" if any(e["type"] == "extra_forbidden" for e in exc.errors()) \
            else "invalid_frame"
        raise FrameError(code, "; ".join(problems), **extra) from None
