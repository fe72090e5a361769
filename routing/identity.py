"""Normalisation and validation of identities: one spelling per identifier.

A national ID is 13 digits whose last is a checksum; a phone is stored in E.164 (Thai
numbers such as 081-234-5678 become +66812345678); an email has its domain lower-cased.
"""

from __future__ import annotations

import re

import phonenumbers

from routing.domain import IdentityHint, IdentityKind
from routing.errors import InvalidIdentity

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_EMAIL = re.compile(rf"^[^@\s<>()\[\],;:\"]+@{_LABEL}(?:\.{_LABEL})+$")
_TOKEN = re.compile(r"^[A-Za-z0-9_.:-]{8,128}$")


def normalise(kind: IdentityKind | str, value: str) -> str:
    """Return the one stored spelling of `value`, or raise `InvalidIdentity` saying why."""
    kind = IdentityKind(kind)
    if not isinstance(value, str) or not value.strip():
        raise InvalidIdentity(kind, "empty value")
    value = value.strip()
    if kind is IdentityKind.NATIONAL_ID:
        return normalise_national_id(value)
    if kind is IdentityKind.PHONE:
        return normalise_phone(value)
    if kind is IdentityKind.EMAIL:
        return normalise_email(value)
    if not _TOKEN.match(value):
        raise InvalidIdentity(kind, "must be 8–128 letters, digits or _ . : -")
    return value


def normalise_hint(hint: IdentityHint) -> IdentityHint:
    """The same hint with its value normalised (raises `InvalidIdentity`)."""
    return IdentityHint(hint.kind, normalise(hint.kind, hint.value), hint.verified_by)


def normalise_national_id(value: str) -> str:
    """Thai national ID: 13 digits (dashes and spaces allowed), mod-11 checksum."""
    digits = re.sub(r"[\s-]", "", value)
    if not digits.isascii() or not digits.isdigit():
        raise InvalidIdentity(IdentityKind.NATIONAL_ID, "must contain only digits")
    if len(digits) != 13:
        raise InvalidIdentity(IdentityKind.NATIONAL_ID, f"must be 13 digits, got {len(digits)}")
    if digits[0] == "0":
        raise InvalidIdentity(IdentityKind.NATIONAL_ID, "cannot start with 0")
    if national_id_check_digit(digits[:12]) != int(digits[12]):
        raise InvalidIdentity(IdentityKind.NATIONAL_ID, "checksum digit does not match")
    return digits


def national_id_check_digit(first12: str) -> int:
    """The 13th digit of a Thai national ID given its first twelve."""
    total = sum(int(d) * (13 - i) for i, d in enumerate(first12))
    return (11 - total % 11) % 10


def normalise_phone(value: str, region: str = "TH") -> str:
    """A phone number in E.164; numbers without a country code are read as Thai."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidIdentity(IdentityKind.PHONE, f"not a phone number ({exc})") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidIdentity(IdentityKind.PHONE, "not a valid number for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(value: str) -> str:
    """An email address with its domain lower-cased (the local part is kept as written)."""
    if len(value) > 254 or not _EMAIL.match(value):
        raise InvalidIdentity(IdentityKind.EMAIL, "not an email address")
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


def mask(kind: IdentityKind | str, value: str) -> str:
    """A display form that hides most of the identifier (PDPA: only what the role needs)."""
    kind = IdentityKind(kind)
    if kind is IdentityKind.NATIONAL_ID and len(value) == 13:
        return f"{value[0]}-XXXX-XXXXX-{value[10:12]}-{value[12]}"
    if kind is IdentityKind.PHONE and len(value) > 4:
        return "•" * (len(value) - 4) + value[-4:]
    if kind is IdentityKind.EMAIL and "@" in value:
        local, _, domain = value.partition("@")
        return f"{local[:1]}•••@{domain}"
    return value[:3] + "•••"
