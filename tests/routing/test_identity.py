"""Identities are normalised to one spelling; invalid ones are refused with a reason."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing import IdentityKind, InvalidIdentity, mask, normalise
from routing.identity import national_id_check_digit


@pytest.mark.parametrize("spelling", ["081-234-5678", "+66 81 234 5678", "0812345678",
                                      "66812345678", "(081) 234 5678"])
def test_thai_phone_spellings_are_one_number(spelling: str) -> None:
    assert normalise(IdentityKind.PHONE, spelling) == "+66812345678"


@pytest.mark.parametrize(("value", "reason"), [
    ("12345", "not a valid number"), ("hello", "not a phone number"), ("", "empty"),
])
def test_impossible_phone_numbers_are_refused(value: str, reason: str) -> None:
    with pytest.raises(InvalidIdentity, match=reason):
        normalise(IdentityKind.PHONE, value)


def test_a_valid_national_id_is_accepted_with_dashes() -> None:
    assert normalise(IdentityKind.NATIONAL_ID, "1-1017-00230-70-8") == "1101700230708"


@pytest.mark.parametrize(("value", "reason"), [
    ("1101700230709", "checksum"), ("110170023070", "13 digits"), ("11017OO230708", "digits"),
    ("0101700230705", "cannot start with 0"),
])
def test_invalid_national_ids_are_refused(value: str, reason: str) -> None:
    with pytest.raises(InvalidIdentity, match=reason):
        normalise(IdentityKind.NATIONAL_ID, value)


@given(st.text(alphabet="123456789", min_size=1, max_size=1), st.text(alphabet="0123456789",
                                                                      min_size=11, max_size=11))
def test_every_id_with_its_check_digit_is_valid_and_any_other_digit_is_not(
    first: str, rest: str
) -> None:
    body = first + rest
    good = body + str(national_id_check_digit(body))
    assert normalise(IdentityKind.NATIONAL_ID, good) == good
    bad = body + str((national_id_check_digit(body) + 1) % 10)
    with pytest.raises(InvalidIdentity):
        normalise(IdentityKind.NATIONAL_ID, bad)


def test_email_domains_are_lower_cased_and_malformed_addresses_refused() -> None:
    assert normalise(IdentityKind.EMAIL, "Somchai@Example.CO.TH") == "Somchai@example.co.th"
    for bad in ["no-at-sign", "a@b", "a b@c.th", "<a@b.th>"]:
        with pytest.raises(InvalidIdentity, match="not an email"):
            normalise(IdentityKind.EMAIL, bad)


def test_masking_hides_most_of_an_identifier() -> None:
    assert mask(IdentityKind.NATIONAL_ID, "1101700230708") == "1-XXXX-XXXXX-70-8"
    assert mask(IdentityKind.PHONE, "+66812345678").endswith("5678")
    assert "812" not in mask(IdentityKind.PHONE, "+66812345678")
