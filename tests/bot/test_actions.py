"""The action server protocol, served by bot.actions without Rasa (no server needed)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.actions import ActionServer, KnowledgeHit, create_actions_app
from tests.bot.fakes import MemoryCases, MemoryKnowledge, in_progress

TOKEN = "s3cret"


def action_request(
    action: str,
    *,
    slots: dict[str, Any] | None = None,
    text: str = "",
    entities: list[dict[str, Any]] | None = None,
    metadata: dict[str, Any] | None = None,
    sender: str = "chat-visitor-1",
) -> dict[str, Any]:
    """A request shaped like the one Rasa 3.6 sends to its action endpoint."""
    return {
        "next_action": action,
        "sender_id": sender,
        "version": "3.6.21",
        "domain": {"responses": {}},
        "tracker": {
            "sender_id": sender,
            "slots": {"language": "th", "verified": False, **(slots or {})},
            "latest_message": {
                "text": text,
                "intent": {"name": "case_status", "confidence": 0.98},
                "entities": entities or [],
                "metadata": metadata or {},
            },
            "latest_event_time": 1_700_000_000.0,
            "paused": False,
            "events": [],
            "active_loop": {},
            "latest_action_name": "action_listen",
        },
    }


@pytest.fixture
def cases() -> MemoryCases:
    return MemoryCases({"OS-2026-000123": ("chat-visitor-1", in_progress("OS-2026-000123"))})


@pytest.fixture
def knowledge() -> MemoryKnowledge:
    return MemoryKnowledge(
        [
            KnowledgeHit(
                title="ค่าธรรมเนียมคัดสำเนาทะเบียนบ้าน",
                snippet="คัดสำเนาทะเบียนบ้าน ฉบับละ 10 บาท",
                url="https://example.go.th/kb/42",
            )
        ]
    )


@pytest.fixture
async def client(aiohttp_client: Any, cases: MemoryCases, knowledge: MemoryKnowledge) -> TestClient:
    server = ActionServer(cases, knowledge, token=TOKEN)
    return await aiohttp_client(create_actions_app(server))


async def call(client: TestClient, body: dict[str, Any], token: str | None = TOKEN) -> Any:
    params = {"token": token} if token is not None else {}
    response = await client.post("/webhook", json=body, params=params)
    return response.status, await response.json()


async def test_a_request_without_the_shared_token_is_refused(client: TestClient) -> None:
    status, _ = await call(client, action_request("action_case_status"), token=None)
    assert status == 401
    status, _ = await call(client, action_request("action_case_status"), token="wrong")
    assert status == 401


async def test_an_unknown_action_gets_rasa_sdks_404(client: TestClient) -> None:
    status, body = await call(client, action_request("action_make_coffee"))
    assert status == 404
    assert body["action_name"] == "action_make_coffee"


async def test_a_malformed_request_is_a_400(client: TestClient) -> None:
    status, _ = await call(client, {"sender_id": "x"})
    assert status == 400
    response = await client.post("/webhook", data=b"not json", params={"token": TOKEN})
    assert response.status == 400


async def test_case_status_without_a_number_asks_for_it(client: TestClient) -> None:
    status, body = await call(client, action_request("action_case_status"))
    assert status == 200
    assert body == {"events": [], "responses": [{"response": "utter_ask_case_number"}]}


async def test_an_unverified_citizen_is_handed_to_a_person_without_case_details(
    client: TestClient, cases: MemoryCases
) -> None:
    body = action_request("action_case_status", slots={"case_number": "OS-2026-000123"})
    _, result = await call(client, body)
    [reply] = result["responses"]
    assert reply["custom"] == {"handoff": True, "reason": "verify_identity", "priority": "normal"}
    assert "ระหว่างดำเนินการ" not in reply["text"]
    assert "OS-2026-000123" in reply["text"]


async def test_a_verified_citizen_hears_the_status_of_their_case(client: TestClient) -> None:
    body = action_request(
        "action_case_status",
        slots={"verified": True},
        entities=[{"entity": "case_number", "value": "os-2026-000123"}],
    )
    _, result = await call(client, body)
    [reply] = result["responses"]
    assert "อยู่ระหว่างดำเนินการ" in reply["text"]
    assert reply["custom"] == {"case_number": "OS-2026-000123", "status": "in_progress"}


async def test_case_status_answers_in_english_when_the_language_slot_says_so(
    client: TestClient,
) -> None:
    body = action_request(
        "action_case_status",
        slots={"verified": True, "language": "en", "case_number": "OS-2026-000123"},
    )
    _, result = await call(client, body)
    assert result["responses"][0]["text"].startswith("Case OS-2026-000123: in progress")


async def test_verification_can_come_from_message_metadata(client: TestClient) -> None:
    body = action_request(
        "action_case_status",
        slots={"case_number": "OS-2026-000123"},
        metadata={"verified": True},
    )
    _, result = await call(client, body)
    assert "handoff" not in result["responses"][0]["custom"]


async def test_someone_elses_case_is_not_found(client: TestClient) -> None:
    body = action_request(
        "action_case_status",
        slots={"verified": True, "case_number": "OS-2026-000123"},
        sender="another-visitor",
    )
    _, result = await call(client, body)
    assert "ไม่พบ" in result["responses"][0]["text"]
    assert result["events"] == [
        {"event": "slot", "timestamp": None, "name": "case_number", "value": None}
    ]


async def test_a_failing_case_directory_hands_off(client: TestClient, cases: MemoryCases) -> None:
    cases.fail = True
    body = action_request(
        "action_case_status", slots={"verified": True, "case_number": "OS-2026-000123"}
    )
    _, result = await call(client, body)
    assert result["responses"][0]["custom"]["reason"] == "action_failed"


async def test_open_case_files_the_complaint_and_clears_the_form(
    client: TestClient, cases: MemoryCases
) -> None:
    body = action_request(
        "action_open_case",
        slots={"complaint_detail": "ไฟถนนซอย 5 ดับ", "contact_phone": "0812345678"},
    )
    status, result = await call(client, body)
    assert status == 200
    [opened] = cases.opened
    assert opened.description == "ไฟถนนซอย 5 ดับ"
    assert opened.contact_phone == "0812345678"
    assert opened.category == "complaint"
    assert opened.sender_id == "chat-visitor-1"
    assert "OS-2026-000001" in result["responses"][0]["text"]
    assert {
        "event": "slot",
        "timestamp": None,
        "name": "opened_case_number",
        "value": "OS-2026-000001",
    } in result["events"]
    assert {
        "event": "slot",
        "timestamp": None,
        "name": "complaint_detail",
        "value": None,
    } in result["events"]


async def test_knowledge_search_answers_from_the_best_article(
    client: TestClient, knowledge: MemoryKnowledge
) -> None:
    body = action_request("action_search_knowledge", text="คัดสำเนาทะเบียนบ้าน")
    _, result = await call(client, body)
    [reply] = result["responses"]
    assert "ฉบับละ 10 บาท" in reply["text"]
    assert "https://example.go.th/kb/42" in reply["text"]
    assert knowledge.queries == [("คัดสำเนาทะเบียนบ้าน", "th")]


async def test_knowledge_search_without_a_hit_asks_to_rephrase(client: TestClient) -> None:
    body = action_request("action_search_knowledge", text="asdfgh", slots={"language": "en"})
    _, result = await call(client, body)
    assert result["responses"] == [{"response": "utter_please_rephrase"}]


async def test_every_action_is_declared_in_the_domain() -> None:
    import yaml

    from bot.manager import PROJECT_DIR

    domain = yaml.safe_load((PROJECT_DIR / "domain.yml").read_text(encoding="utf-8"))
    server = ActionServer(MemoryCases(), MemoryKnowledge())
    assert set(server.action_names) <= set(domain["actions"])
