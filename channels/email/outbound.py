"""The outbound seam: agent replies and acknowledgements over an SMTP relay (aiosmtplib).

Every message we send carries threading headers so the citizen's mail client keeps one
conversation and their answer comes back to the same case:
- Message-ID in our domain, beginning with the case number
  (`<OS-2026-000123.ack.<random>@onestop.go.th>`), so a reply whose subject lost its tag is
  still matched (`parsing` reads the case number back out of In-Reply-To/References);
- In-Reply-To = the citizen's Message-ID; References = theirs + that Message-ID;
- Subject keeps (or gains) the `[OS-…]` tag.
Acknowledgements are `Auto-Submitted: auto-replied` (RFC 3834) so well-behaved
auto-responders do not answer them, and are never sent to automata (`should_acknowledge`).

Failures raise `OutboundSendError` with `retryable` set: the lead's retry queue retries
temporary ones (connection, timeout, 4xx) and gives up on permanent ones (5xx).
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path

import aiosmtplib
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from channels.email.config import OutboundConfig
from channels.email.model import EmailAddress, ParsedEmail

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).parent / "templates"
_CASE_TAG = re.compile(r"\[\s*[A-Z]+-\d{4}-\d{6}\s*\]", re.IGNORECASE)
_REPLY_PREFIX = re.compile(
    r"^\s*((re|fw|fwd|aw|sv|ตอบกลับ|ตอบ)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE
)
_MAX_REFERENCES = 20


class OutboundSendError(RuntimeError):
    """Sending failed. `retryable` tells the retry queue whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool, smtp_code: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.smtp_code = smtp_code


@dataclass(frozen=True, slots=True)
class OutgoingAttachment:
    """A file to attach to an outgoing message."""

    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    """What the core asks the channel to send."""

    to: tuple[EmailAddress, ...]
    subject: str
    body_text: str
    case_number: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    cc: tuple[EmailAddress, ...] = ()
    body_html: str | None = None
    attachments: tuple[OutgoingAttachment, ...] = ()
    acknowledgement: bool = False
    kind: str = "reply"
    include_signature: bool = True


@dataclass(frozen=True, slots=True)
class SentEmail:
    """Proof of hand-off to the relay: our Message-ID and any recipients it refused."""

    message_id: str
    recipients: tuple[str, ...]
    refused: dict[str, str] = field(default_factory=dict)
    relay_response: str = ""


def make_message_id(domain: str, case_number: str | None = None, kind: str = "msg") -> str:
    """A new Message-ID in our domain; it starts with the case number when there is one."""
    token = secrets.token_hex(12)
    safe_kind = re.sub(r"[^a-z0-9-]", "", kind.lower()) or "msg"
    prefix = f"{case_number}.{safe_kind}" if case_number else f"onestop.{safe_kind}"
    return f"<{prefix}.{token}@{domain}>"


def reply_subject(original: str, case_number: str | None) -> str:
    """`Re: <original>` with exactly one `Re:` and the case tag present once."""
    base = _REPLY_PREFIX.sub("", original or "").strip()
    if case_number and not _CASE_TAG.search(base):
        base = f"{base} [{case_number}]".strip()
    return f"Re: {base}" if base else f"Re: [{case_number}]" if case_number else "Re:"


def reply_to(
    parent: ParsedEmail,
    body_text: str,
    case_number: str | None,
    *,
    body_html: str | None = None,
    attachments: tuple[OutgoingAttachment, ...] = (),
) -> OutgoingEmail:
    """An agent's reply to `parent`, threaded under it."""
    target = parent.reply_address
    if target is None:
        raise OutboundSendError("the message has no From or Reply-To address", retryable=False)
    return OutgoingEmail(
        to=(target,),
        subject=reply_subject(parent.subject, case_number or parent.case_number),
        body_text=body_text,
        case_number=case_number or parent.case_number,
        in_reply_to=parent.message_id,
        references=_references_for(parent),
        body_html=body_html,
        attachments=attachments,
    )


class AcknowledgementRenderer:
    """Renders the Thai-first, English-second acknowledgement from `templates/`."""

    def __init__(self, templates_dir: Path = TEMPLATES_DIR) -> None:
        self.env = Environment(
            loader=FileSystemLoader(str(templates_dir)),
            # Autoescape for the HTML version only; plain text must stay as typed.
            autoescape=select_autoescape(enabled_extensions=("html", "html.j2")),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )

    def render(
        self,
        case_number: str,
        citizen_name: str = "",
        subject: str = "",
        response_hours: int = 24,
    ) -> tuple[str, str]:
        """Return (plain text, html) for an acknowledgement."""
        context = {
            "case_number": case_number,
            "citizen_name": citizen_name,
            "subject": subject,
            "response_hours": response_hours,
        }
        thai = self.env.get_template("ack_th.txt.j2").render(context).strip()
        english = self.env.get_template("ack_en.txt.j2").render(context).strip()
        html = self.env.get_template("ack.html.j2").render(context)
        return f"{thai}\n\n----------\n\n{english}\n", html


def acknowledgement_for(
    parent: ParsedEmail,
    case_number: str,
    renderer: AcknowledgementRenderer | None = None,
    response_hours: int = 24,
) -> OutgoingEmail:
    """The automatic "we received your message" reply, threaded under `parent`."""
    target = parent.reply_address
    if target is None:
        raise OutboundSendError("the message has no From or Reply-To address", retryable=False)
    text, html = (renderer or AcknowledgementRenderer()).render(
        case_number, target.name, parent.subject[:200], response_hours
    )
    return OutgoingEmail(
        to=(target,),
        subject=reply_subject(parent.subject, case_number),
        body_text=text,
        body_html=html,
        case_number=case_number,
        in_reply_to=parent.message_id,
        references=_references_for(parent),
        acknowledgement=True,
        kind="ack",
    )


def build_message(email: OutgoingEmail, config: OutboundConfig) -> EmailMessage:
    """Compose the MIME message (threading headers, signature, html, attachments)."""
    if not email.to:
        raise OutboundSendError("no recipient", retryable=False)
    message = EmailMessage()
    message["From"] = formataddr((config.from_name, config.from_address))
    try:
        message["To"] = [_address(a) for a in email.to]
        if email.cc:
            message["Cc"] = [_address(a) for a in email.cc]
    except (ValueError, IndexError) as exc:
        raise OutboundSendError(f"invalid recipient address: {exc}", retryable=False) from exc
    subject = email.subject
    if email.case_number and not _CASE_TAG.search(subject):
        subject = f"{subject} [{email.case_number}]".strip()
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_message_id(config.message_id_domain, email.case_number, email.kind)
    if email.in_reply_to:
        message["In-Reply-To"] = email.in_reply_to
    references = list(email.references)
    if email.in_reply_to and email.in_reply_to not in references:
        references.append(email.in_reply_to)
    if references:
        message["References"] = " ".join(_bounded(references))
    if email.acknowledgement:
        message["Auto-Submitted"] = "auto-replied"
        # Exchange/Outlook honour this and do not answer with their own auto-replies.
        message["X-Auto-Response-Suppress"] = "All"
    if email.case_number:
        message["X-OneStop-Case"] = email.case_number
    body = email.body_text.rstrip()
    if email.include_signature and config.signature:
        body = f"{body}\n\n-- \n{config.signature}"
    # base64 rather than 8bit: not every relay announces 8BITMIME, and Thai text is dense.
    message.set_content(body + "\n", subtype="plain", charset="utf-8", cte="base64")
    if email.body_html:
        message.add_alternative(email.body_html, subtype="html", charset="utf-8")
    for attachment in email.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(
            attachment.content,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=attachment.filename,
        )
    return message


class SmtpReplySender:
    """Delivers `OutgoingEmail`s through the configured relay."""

    def __init__(self, config: OutboundConfig) -> None:
        self.config = config

    async def deliver(self, email: OutgoingEmail) -> SentEmail:
        """Send one message. Raises `OutboundSendError` (see `retryable`) on failure."""
        message = build_message(email, self.config)
        recipients = tuple(a.address for a in (*email.to, *email.cc))
        config = self.config
        try:
            refused, response = await aiosmtplib.send(
                message,
                sender=config.from_address,
                recipients=list(recipients),
                hostname=config.relay_host,
                port=config.relay_port,
                username=config.username,
                password=config.password,
                use_tls=config.use_tls,
                start_tls=config.start_tls,
                timeout=config.timeout_seconds,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            permanent = bool(codes) and all(code >= 500 for code in codes)
            raise OutboundSendError(
                f"relay refused every recipient: {exc}", retryable=not permanent,
                smtp_code=codes[0] if codes else None,
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise OutboundSendError(
                f"relay answered {exc.code} {exc.message}", retryable=exc.code < 500,
                smtp_code=exc.code,
            ) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise OutboundSendError(
                f"could not reach relay {config.relay_host}:{config.relay_port}: {exc}",
                retryable=True,
            ) from exc
        message_id = str(message["Message-ID"])
        log.info("email out: %s to %d recipient(s)", message_id, len(recipients))  # no addresses
        return SentEmail(
            message_id=message_id,
            recipients=recipients,
            refused={k: f"{v.code} {v.message}" for k, v in refused.items()},
            relay_response=response,
        )


def _references_for(parent: ParsedEmail) -> tuple[str, ...]:
    chain = list(parent.references)
    if parent.message_id and parent.message_id not in chain:
        chain.append(parent.message_id)
    return tuple(_bounded(chain))


def _bounded(ids: list[str]) -> list[str]:
    # Keep the thread root and the latest ancestors (RFC 5322 §3.6.4 allows trimming).
    return ids if len(ids) <= _MAX_REFERENCES else [ids[0], *ids[-(_MAX_REFERENCES - 1) :]]


def _address(address: EmailAddress) -> Address:
    local, _, domain = address.address.rpartition("@")
    return Address(display_name=address.name, username=local, domain=domain)
