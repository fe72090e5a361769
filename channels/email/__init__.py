"""Email channel: inbound SMTP and IMAP, parsing, outbound replies (see README.md).

Seams for the core are in `channels.email.ports`; this package imports nothing from the core.
"""

from channels.email.model import Attachment, EmailAddress, Envelope, ParsedEmail
from channels.email.parsing import parse_email, should_acknowledge
from channels.email.ports import EmailSink, ImapStateStore, MailboxState

__all__ = [
    "Attachment",
    "EmailAddress",
    "EmailSink",
    "Envelope",
    "ImapStateStore",
    "MailboxState",
    "ParsedEmail",
    "parse_email",
    "should_acknowledge",
]
