"""SMS into the same core and out through Twilio Messaging; officers' voice tokens."""

from __future__ import annotations

import asyncio

import jwt
from aiohttp.test_utils import TestClient

from routing import Conversation, Message
from tests.ivr.conftest import ACCOUNT_SID, TwilioApi, center_of
from tests.ivr.walker import PUBLIC_URL, sign
from tests.support.app import bearer, login


async def post_sms(client: TestClient, sid: str, body: str,
                   sender: str = "+66812345678") -> int:
    params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": ACCOUNT_SID, "From": sender,
              "To": "+6621234567", "Body": body, "NumMedia": "0"}
    response = await client.post("/ivr/sms", data=params, headers={
        "X-Twilio-Signature": sign(f"{PUBLIC_URL}/ivr/sms", params)})
    assert response.content_type == "text/xml" or response.status != 200
    return response.status


async def sms_messages(client: TestClient, key: str) -> list[Message]:
    center = center_of(client)
    rows, _ = await center.list_rows(Conversation, Conversation.provider_key == key)
    assert rows
    return await center.messages(rows[0].id)


async def test_an_sms_is_stored_once_and_the_bots_answer_goes_back_by_sms(
    client: TestClient, twilio_api: TwilioApi,
) -> None:
    assert await post_sms(client, "SM" + "1" * 32, "สำนักงานเปิดกี่โมง เวลาทำการ") == 200
    assert await post_sms(client, "SM" + "1" * 32, "สำนักงานเปิดกี่โมง เวลาทำการ") == 200
    (sent,) = await twilio_api.wait_for("/Messages.json")
    assert sent.form["To"] == "+66812345678" and sent.form["From"] == "+6621234567"
    assert "เปิดวันจันทร์ถึงศุกร์" in sent.form["Body"]
    assert sent.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    inbound = [m for m in await sms_messages(client, "+66812345678")
               if m.direction == "inbound"]
    assert len(inbound) == 1


async def test_an_sms_twilio_refuses_is_marked_failed_without_endless_retries(
    client: TestClient, twilio_api: TwilioApi,
) -> None:
    twilio_api.refuse_with = 400
    assert await post_sms(client, "SM" + "2" * 32, "open?", sender="+66899999999") == 200
    for _ in range(200):
        outbound = [m for m in await sms_messages(client, "+66899999999")
                    if m.direction == "outbound"]
        if outbound and outbound[0].delivery == "failed":
            break
        await asyncio.sleep(0.02)
    assert outbound[0].delivery == "failed"
    assert len(twilio_api.sent("/Messages.json")) == 1


async def test_an_sms_without_a_sender_is_refused_with_a_clear_error(
    client: TestClient,
) -> None:
    params = {"MessageSid": "SM" + "3" * 32, "Body": "hello"}
    response = await client.post("/ivr/sms", data=params, headers={
        "X-Twilio-Signature": sign(f"{PUBLIC_URL}/ivr/sms", params)})
    assert response.status == 400
    assert "From" in await response.text()


async def test_an_officer_gets_a_voice_token_for_their_own_client_identity(
    client: TestClient,
) -> None:
    assert (await client.get("/ivr/token")).status == 401
    assert (await client.get("/ivr/token", headers=bearer("forged"))).status == 401
    me = await login(client, "somsri", "demo-agent-1")
    response = await client.get("/ivr/token", headers=bearer(me["token"]))
    assert response.status == 200
    body = await response.json()
    claims = jwt.decode(body["token"], "api-secret-for-tests-0123456789abcdef", algorithms=["HS256"])
    assert claims["grants"]["identity"] == f"agent_{me['me']['agent_id']}" == body["identity"]
    assert claims["grants"]["voice"]["incoming"]["allow"] is True
    assert claims["iss"] == "SK" + "b" * 32 and claims["sub"] == ACCOUNT_SID
