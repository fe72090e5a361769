"""Every webhook is checked with Twilio's RequestValidator against the public URL."""

from __future__ import annotations

import hashlib
import json

from aiohttp.test_utils import TestClient
from twilio.request_validator import RequestValidator

from routing import Conversation
from tests.ivr.conftest import center_of
from tests.ivr.walker import PUBLIC_URL, Phone, sign

# Twilio's published worked example (docs: "Validating signatures from Twilio").
EXAMPLE_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
EXAMPLE_PARAMS = {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
                  "From": "+12349013030", "To": "+18005551212"}
EXAMPLE_SIGNATURE = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_twilios_worked_example_signature_is_reproduced_by_the_sdk() -> None:
    validator = RequestValidator("12345")
    assert validator.compute_signature(EXAMPLE_URL, EXAMPLE_PARAMS) == EXAMPLE_SIGNATURE
    assert validator.validate(EXAMPLE_URL, EXAMPLE_PARAMS, EXAMPLE_SIGNATURE)


def test_the_worked_example_fails_when_a_parameter_the_url_or_the_token_changes() -> None:
    validator = RequestValidator("12345")
    changed = {**EXAMPLE_PARAMS, "Digits": "1235"}
    assert not validator.validate(EXAMPLE_URL, changed, EXAMPLE_SIGNATURE)
    assert not validator.validate(EXAMPLE_URL.replace("bar=2", "bar=3"), EXAMPLE_PARAMS,
                                  EXAMPLE_SIGNATURE)
    assert not RequestValidator("12346").validate(EXAMPLE_URL, EXAMPLE_PARAMS,
                                                  EXAMPLE_SIGNATURE)


async def test_a_correctly_signed_call_is_answered_in_thai_first(client: TestClient) -> None:
    phone = Phone(client)
    doc = await phone.dial_in()
    says = doc.findall(".//Say")
    assert says[0].attrib["language"] == "th-TH"
    assert any(s.attrib["language"] == "en-US" and "English" in (s.text or "") for s in says)


async def test_unsigned_or_tampered_webhooks_are_refused_and_store_nothing(
    client: TestClient,
) -> None:
    params = {"CallSid": "CA" + "e" * 32, "From": "+66812345678", "To": "+6621234567"}
    url = f"{PUBLIC_URL}/ivr/voice"
    good = sign(url, params)
    cases = [
        ({}, params),  # no signature at all
        ({"X-Twilio-Signature": good}, {**params, "From": "+66899999999"}),  # changed param
        ({"X-Twilio-Signature": good}, {**params, "Digits": "1"}),  # added param
        ({"X-Twilio-Signature": sign(url, params, "another-token")}, params),  # other token
    ]
    for headers, data in cases:
        response = await client.post("/ivr/voice", data=data, headers=headers)
        assert response.status == 403, await response.text()
    # Signed for another URL (a different query string) is refused too.
    response = await client.post("/ivr/voice?x=1", data=params, headers={
        "X-Twilio-Signature": good})
    assert response.status == 403
    _, total = await center_of(client).list_rows(Conversation)
    assert total == 0


async def test_json_webhooks_are_checked_through_their_body_hash(client: TestClient) -> None:
    body = json.dumps({"CallSid": "CA" + "f" * 32, "CallStatus": "completed",
                       "From": "+66812345678"})
    digest = hashlib.sha256(body.encode()).hexdigest()
    path = f"/ivr/status?bodySHA256={digest}"
    signature = sign(PUBLIC_URL + path, {})
    ok = await client.post(path, data=body, headers={"X-Twilio-Signature": signature,
                                                     "Content-Type": "application/json"})
    assert ok.status == 200, await ok.text()
    tampered = body.replace("completed", "busy")
    bad = await client.post(path, data=tampered, headers={"X-Twilio-Signature": signature,
                                                          "Content-Type": "application/json"})
    assert bad.status == 403


async def test_a_request_without_a_call_sid_gets_a_clear_400(client: TestClient) -> None:
    params = {"From": "+66812345678"}
    response = await client.post("/ivr/voice", data=params, headers={
        "X-Twilio-Signature": sign(f"{PUBLIC_URL}/ivr/voice", params)})
    assert response.status == 400
    assert "CallSid" in await response.text()

