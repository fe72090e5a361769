"""Settings of the email channel, validated at start-up (pydantic, so mistakes name the field)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

MiB = 1024 * 1024


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ParseLimits(_Settings):
    """What the parser keeps: attachment allow-list and sizes, nesting and header limits."""

    allowed_attachment_types: frozenset[str] = frozenset(
        {
            "application/pdf",
            "image/jpeg",
            "image/png",
            "image/gif",
            "image/webp",
            "image/heic",
            "image/tiff",
            "text/plain",
            "text/csv",
            "text/calendar",
            "application/msword",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.ms-excel",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "application/vnd.oasis.opendocument.text",
            "application/vnd.oasis.opendocument.spreadsheet",
            "application/zip",
            # Report parts of bounces and forwarded mail: kept so agents can read them.
            "message/rfc822",
            "message/delivery-status",
            "message/disposition-notification",
            "text/rfc822-headers",
        }
    )
    # Refused whatever their declared type: what a citizen's clerk could be tricked to run.
    blocked_extensions: frozenset[str] = frozenset(
        {
            ".exe", ".com", ".bat", ".cmd", ".scr", ".pif", ".js", ".jse", ".vbs", ".vbe",
            ".wsf", ".msi", ".jar", ".ps1", ".lnk", ".hta", ".cpl", ".dll", ".iso", ".docm",
            ".xlsm",
        }
    )
    max_attachment_bytes: int = Field(default=10 * MiB, gt=0)
    max_total_attachment_bytes: int = Field(default=25 * MiB, gt=0)
    max_attachments: int = Field(default=30, gt=0)
    max_depth: int = Field(default=30, gt=0)
    max_parts: int = Field(default=500, gt=0)
    max_header_value_chars: int = Field(default=8192, gt=0)
    max_header_section_bytes: int = Field(default=256 * 1024, gt=0)
    max_body_chars: int = Field(default=1_000_000, gt=0)
    case_prefix: str = "OS"

    @field_validator("allowed_attachment_types", "blocked_extensions")
    @classmethod
    def _lower(cls, value: frozenset[str]) -> frozenset[str]:
        return frozenset(v.lower() for v in value)


class SmtpInboundConfig(_Settings):
    """Inbound SMTP listener: where it listens, how big a message may be, who it serves."""

    host: str = "127.0.0.1"
    port: int = Field(default=2525, ge=0, le=65535)
    hostname: str = "mail.onestop.local"
    max_message_bytes: int = Field(default=25 * MiB, gt=0)
    accepted_domains: frozenset[str] = frozenset()
    # Full recipient address → queue; any other address at an accepted domain → default_queue.
    recipient_queues: dict[str, str] = Field(default_factory=dict)
    default_queue: str = "email-general"
    timeout_seconds: float = Field(default=300, gt=0)
    # STARTTLS: offered when both files are set; senders that do not use it are still
    # accepted unless require_starttls (public MX mail is opportunistic TLS, RFC 3207).
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    require_starttls: bool = False

    @field_validator("accepted_domains")
    @classmethod
    def _lower_domains(cls, value: frozenset[str]) -> frozenset[str]:
        return frozenset(v.lower().strip() for v in value)

    @field_validator("recipient_queues")
    @classmethod
    def _lower_addresses(cls, value: dict[str, str]) -> dict[str, str]:
        return {k.lower().strip(): v for k, v in value.items()}


class ImapConfig(_Settings):
    """One IMAP mailbox to poll."""

    host: str
    port: int = Field(default=993, ge=1, le=65535)
    use_tls: bool = True
    username: str
    password: str = Field(repr=False)
    mailbox: str = "INBOX"
    queue: str = "email-general"
    poll_interval_seconds: float = Field(default=60, gt=0)
    # RFC 2177 asks clients to re-issue IDLE at least every 29 minutes.
    idle_timeout_seconds: float = Field(default=25 * 60, gt=0)
    use_idle: bool = True
    batch_size: int = Field(default=50, gt=0)
    command_timeout_seconds: float = Field(default=60, gt=0)


class OutboundConfig(_Settings):
    """The SMTP relay replies go out through and how our messages are signed."""

    relay_host: str = "127.0.0.1"
    relay_port: int = Field(default=25, ge=1, le=65535)
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    use_tls: bool = False
    start_tls: bool | None = None
    timeout_seconds: float = Field(default=30, gt=0)
    from_address: str = "help@onestop.go.th"
    from_name: str = "ศูนย์บริการประชาชน OneStop / OneStop Citizen Service"
    message_id_domain: str = "onestop.go.th"
    signature: str = (
        "ศูนย์บริการประชาชน OneStop\n"
        "OneStop Citizen Service Centre"
    )


class RateLimitConfig(_Settings):
    """Per-sender token bucket: `burst` messages at once, refilled at `per_minute`."""

    burst: int = Field(default=20, gt=0)
    per_minute: float = Field(default=10, gt=0)
    max_senders: int = Field(default=100_000, gt=0)
