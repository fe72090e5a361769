"""The desk's citizen 360, knowledge base, attachments, hand back to the bot and the call
screen pop, in real Chromium: an agent sees an elderly, disabled citizen's flags and
cross-channel timeline, confirms a merge suggestion, adds an identifier (a bad one is
refused with the API's reason), inserts a knowledge answer, attaches a PDF (an .exe is
refused), proposes an article from the resolved case and hands the chat back to the bot;
on a call she sees the IVR path and the case offered, and files the call under another case.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from playwright.async_api import Browser, expect

from routing import (
    SYSTEM,
    Author,
    Channel,
    ContactCenter,
    IdentityHint,
    IdentityKind,
    InboundMessage,
)
from tests.agent_console.test_console_browser import (  # noqa: F401 (fixtures)
    api_get,
    artifacts,
    server,
    sign_in,
)
from tests.routing.helpers import settle

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


async def closed(center: ContactCenter, stored_conversation_id: str) -> None:
    """An earlier contact, finished: it stays in the timeline, not in anyone's offers."""
    await settle(center)
    await center.close_conversation(stored_conversation_id)
    await settle(center)



async def go_available(page: object) -> None:
    await page.get_by_label("พร้อมรับงาน").check()  # type: ignore[attr-defined]
    await page.get_by_role("button", name="เปลี่ยนสถานะ").click()  # type: ignore[attr-defined]


async def test_an_agent_works_a_chat_with_the_citizen_360_knowledge_and_attachments(
    server: tuple[str, ContactCenter], browser: Browser, artifacts: Path,  # noqa: F811
) -> None:
    base, center = server
    email = await center.ingest(InboundMessage(
        Channel.EMAIL, "thread-malee", "<malee-1@mail.th>", "สอบถามเบี้ยยังชีพผู้สูงอายุ",
        subject="เบี้ยยังชีพ", identity_hints=(IdentityHint(IdentityKind.EMAIL, "malee@mail.th"),)))
    await closed(center, email.conversation_id)
    await center.update_profile(email.citizen_id, {
        "name_th": "มาลี ศรีสุข", "birth_date": date(1950, 1, 2),
        "address": "99 หมู่ 1 ต.บางพูด อ.ปากเกร็ด จ.นนทบุรี"}, SYSTEM)
    await center.set_flags(email.citizen_id, ["disability"], SYSTEM)
    other = await center.ingest(InboundMessage(
        Channel.KIOSK, "kiosk-7:v", "kiosk-7:e1", "พิมพ์เอกสาร",
        identity_hints=(IdentityHint(IdentityKind.EMAIL, "malee.s@mail.th"),)))
    await closed(center, other.conversation_id)
    await center.update_profile(other.citizen_id, {"name_th": "มาลี ศรีสุข",
                                                   "birth_date": date(1950, 1, 2)}, SYSTEM)
    chat = await center.ingest(InboundMessage(
        Channel.CHAT, "chat-malee", "chat-malee:1", "ขอทราบวิธีสมัครเบี้ยผู้สูงอายุค่ะ",
        identity_hints=(IdentityHint(IdentityKind.CHAT_VISITOR, "visitor-malee"),
                        IdentityHint(IdentityKind.EMAIL, "malee@mail.th"))))
    assert chat.citizen_id == email.citizen_id

    agent = await sign_in(browser, base, "somsri", "demo-agent-1")
    await expect(agent.locator("body[data-live=on]")).to_have_count(1)
    await go_available(agent)
    offer = agent.locator(".offer")
    await expect(offer).to_have_count(1)
    await offer.get_by_role("button", name="รับงาน").click()
    pane = agent.locator(".pane:not([hidden])")
    await expect(pane.locator(".history .body").first).to_have_text("ขอทราบวิธีสมัครเบี้ยผู้สูงอายุค่ะ")

    # The citizen 360: profile, highlighted flags, identities, cases, timeline.
    c360 = pane.locator(".c360")
    await expect(c360.locator(".flags")).to_contain_text("ผู้สูงอายุ")
    await expect(c360.locator(".flags")).to_contain_text("ผู้พิการ")
    await expect(c360.locator(".profile")).to_contain_text("มาลี ศรีสุข")
    await expect(c360.locator(".profile")).to_contain_text("ปากเกร็ด")
    await expect(c360.locator(".identities")).to_contain_text("malee@mail.th")
    await expect(c360.locator(".cases")).to_contain_text(email.case_number)
    await expect(c360.locator(".cases")).to_contain_text(chat.case_number)
    timeline = pane.locator(".timeline")
    await expect(timeline.locator(".tl.message", has_text="ขอทราบวิธีสมัคร")).to_have_count(1)
    await expect(timeline.locator('.tl[data-channel="email"]', has_text="อีเมล").first).to_be_visible()
    await expect(timeline.locator('.tl[data-channel="chat"]', has_text="แชต").first).to_be_visible()
    texts = await timeline.locator(".tl.message .tl-text").all_inner_texts()
    asked, chatted = (next(i for i, x in enumerate(texts) if word in x)
                      for word in ("สอบถามเบี้ยยังชีพ", "ขอทราบวิธีสมัคร"))
    assert asked < chatted  # oldest first, newest last
    await pane.get_by_label("แสดงช่องทาง").select_option("email")
    await expect(timeline.locator('.tl[data-channel="chat"]')).to_have_count(0)
    await expect(timeline.locator(".tl.message", has_text="สอบถามเบี้ยยังชีพ")).to_have_count(1)
    await pane.get_by_label("แสดงช่องทาง").select_option("")
    await expect(timeline.locator('.tl[data-channel="chat"]').first).to_be_visible()

    # The merge suggestion (same Thai name and birth date), confirmed.
    suggestion = c360.locator(".suggestion")
    await expect(suggestion).to_contain_text("ชื่อและวันเกิดตรงกัน")
    await expect(suggestion).to_contain_text("malee.s@mail.th")
    await agent.screenshot(path=str(artifacts / "4-citizen-360.png"), full_page=True)
    await suggestion.get_by_role("button", name="ยืนยัน รวมข้อมูล").click()
    await expect(c360.locator(".c360-status")).to_have_text("รวมข้อมูลประชาชนแล้ว")
    await expect(c360.locator(".suggestion")).to_have_count(0)
    await expect(c360.locator(".identities")).to_contain_text("malee.s@mail.th")
    merged = await api_get(base, f"/citizens/{chat.citizen_id}")
    assert merged["suggestions"] == []
    assert {i["value"] for i in merged["identities"]} >= {"malee@mail.th", "malee.s@mail.th"}
    assert (await api_get(base, f"/citizens/{other.citizen_id}"))["id"] == merged["id"]

    # An identifier the agent checked: a bad national ID is refused with the reason.
    await pane.get_by_label("ประเภท").select_option("national_id")
    await pane.get_by_label("เลข / ที่อยู่").fill("1234567890123")
    await pane.get_by_role("button", name="เพิ่ม", exact=True).click()
    status = c360.locator(".id-status")
    await expect(status).to_have_class("id-status error")
    await expect(status).to_contain_text("ข้อมูลไม่ถูกต้อง: ")
    await pane.get_by_label("ประเภท").select_option("phone")
    await pane.get_by_label("เลข / ที่อยู่").fill("081 234 5678")
    await pane.get_by_role("button", name="เพิ่ม", exact=True).click()
    await expect(status).to_have_text("เพิ่มข้อมูลแล้ว")
    await expect(c360.locator(".identities")).to_contain_text("+66812345678")
    await expect(c360.locator(".identities")).to_contain_text("เจ้าหน้าที่ตรวจสอบ")

    # The knowledge base: search, insert the answer into the reply.
    await pane.get_by_label("ค้นหาคำตอบ").fill("เบี้ยผู้สูงอายุ")
    await pane.get_by_role("button", name="ค้นหา", exact=True).click()
    hit = pane.locator(".kb-hit").first
    await expect(hit).to_be_visible()
    snippet = await hit.locator(".kb-snippet").inner_text()
    link = await hit.locator("a").get_attribute("href")
    assert link and "/help/" in link
    await hit.get_by_role("button", name="ใส่ในข้อความตอบกลับ").click()
    reply = pane.get_by_role("textbox", name="ข้อความตอบกลับ", exact=True)
    await expect(reply).to_be_focused()
    assert await reply.input_value() == f"{snippet}\n{link}"

    # Attachments: an .exe is refused (415), a PDF goes with the reply.
    files = pane.get_by_label("แนบไฟล์")
    await files.set_input_files({"name": "tool.exe", "mimeType": "application/x-msdownload",
                                 "buffer": b"MZ\x90\x00"})
    attach_status = pane.locator(".attach-status")
    await expect(attach_status).to_contain_text("แนบ tool.exe ไม่ได้: ไม่รองรับไฟล์ประเภทนี้")
    await expect(attach_status).to_have_class("attach-status error")
    await files.set_input_files({"name": "แบบคำขอ.pdf", "mimeType": "application/pdf",
                                 "buffer": PDF})
    await expect(attach_status).to_have_text("แนบแล้ว 1 ไฟล์ จะส่งไปพร้อมข้อความ")
    await expect(pane.locator(".attach-list")).to_contain_text("แบบคำขอ.pdf")
    await pane.get_by_role("button", name="ส่ง", exact=True).click()
    await expect(pane.locator(".history .msg.outbound").last).to_contain_text("📎 แบบคำขอ.pdf")
    await expect(pane.locator(".attach-list li")).to_have_count(0)
    messages = await center.messages(chat.conversation_id)
    sent = [m for m in messages if m.direction == "outbound" and m.author == Author.AGENT]
    assert len(sent) == 1 and sent[0].body == f"{snippet}\n{link}"
    assert [(a["filename"], a["content_type"], a["size"]) for a in sent[0].attachments] == [
        ("แบบคำขอ.pdf", "application/pdf", len(PDF))]
    assert sent[0].attachments[0]["ref"].startswith("sha256:")

    # Resolve the case, propose an article from it.
    await expect(pane.locator(".kb-propose")).to_be_hidden()
    await pane.get_by_label("สถานะเรื่อง").select_option("resolved")
    await pane.get_by_label("ผลการดำเนินการ").fill("แนะนำให้ยื่นคำขอที่สำนักงานเขตพร้อมบัตรประชาชน")
    await pane.get_by_role("button", name="บันทึกเรื่อง").click()
    await pane.get_by_role("button", name="เสนอบทความจากเรื่องนี้").click()
    await expect(pane.locator(".kb-propose-status")).to_contain_text("ส่งร่างบทความแล้ว")
    await agent.screenshot(path=str(artifacts / "5-knowledge-attachments.png"), full_page=True)

    # Hand the chat back to the bot: the pane closes, the conversation is the bot's.
    await pane.get_by_role("button", name="ส่งกลับให้บอตดูแล").click()
    await expect(agent.locator(".pane")).to_have_count(0)
    conversation = await api_get(base, f"/conversations/{chat.conversation_id}")
    assert conversation["status"] == "bot" and conversation["agent_id"] is None
    tasks = (await api_get(base, "/tasks?limit=5"))["items"]
    assert [t["status"] for t in tasks if t["conversation_id"] == chat.conversation_id] == [
        "completed"]


async def test_a_call_pops_the_ivr_path_and_the_case_offered_and_is_filed_under_another_case(
    server: tuple[str, ContactCenter], browser: Browser, artifacts: Path,  # noqa: F811
) -> None:
    base, center = server
    hints = (IdentityHint(IdentityKind.EMAIL, "somchai@mail.th"),)
    first = await center.ingest(InboundMessage(
        Channel.EMAIL, "thread-a", "<a@mail.th>", "ขอคัดสำเนาทะเบียนบ้าน", identity_hints=hints))
    second = await center.ingest(InboundMessage(
        Channel.EMAIL, "thread-b", "<b@mail.th>", "แจ้งย้ายที่อยู่", identity_hints=hints))
    for stored in (first, second):
        await closed(center, stored.conversation_id)
    await center.add_identity(first.citizen_id, IdentityHint(
        IdentityKind.PHONE, "0812345678", "caller_id"), SYSTEM)
    caller = (IdentityHint(IdentityKind.PHONE, "+66812345678", "caller_id"),)
    start = await center.ingest(InboundMessage(
        Channel.VOICE, "CA-pop", "CA-pop:start", "สายเข้า: ระบบตอบรับอัตโนมัติ / Incoming call: automated menu",
        author=Author.SYSTEM, language="th", identity_hints=caller, case_number=first.case_number))
    assert start.case_number == first.case_number and start.citizen_id == first.citizen_id
    await center.ingest(InboundMessage(
        Channel.VOICE, "CA-pop", "CA-pop:1", "เลือกติดต่อเรื่องคำร้องเดิม / Chose the open case",
        author=Author.SYSTEM, language="th", identity_hints=caller))
    await center.hand_to_people(start.conversation_id, reason="open_case",
                                context={"ivr_path": ["open_case:1"], "language": "th",
                                         "call_sid": "CA-pop"})
    await settle(center)

    agent = await sign_in(browser, base, "somsri", "demo-agent-1")
    await expect(agent.locator("body[data-live=on]")).to_have_count(1)
    await go_available(agent)
    await agent.locator(".offer").get_by_role("button", name="รับงาน").click()
    pane = agent.locator(".pane:not([hidden])")
    pop = pane.locator(".screen-pop")
    await expect(pop).to_be_visible()
    await expect(pop.locator(".ivr-path li")).to_have_count(2)
    await expect(pop.locator(".ivr-path")).to_contain_text("เลือกติดต่อเรื่องคำร้องเดิม")
    await expect(pop.locator(".pop-case")).to_contain_text(first.case_number)
    await expect(pop.locator(".pop-case")).to_contain_text("ผู้โทรเลือกเรื่องนี้")
    await expect(pop).to_contain_text("ติดต่อเรื่องคำร้องเดิม")
    await expect(pane.locator(".to-bot")).to_have_count(0)  # calls do not go to the bot
    await expect(pane.locator(".timeline")).to_contain_text("ขอคัดสำเนาทะเบียนบ้าน")  # the earlier email
    await expect(pane.locator('.timeline .tl[data-channel="voice"]').first).to_contain_text("โทรศัพท์")
    await agent.screenshot(path=str(artifacts / "6-screen-pop.png"), full_page=True)

    await pane.get_by_label("ย้ายการสนทนานี้ไปไว้ใต้เรื่อง").select_option(second.case_number)
    await pane.get_by_role("button", name="ย้ายไปเรื่องนี้").click()
    await expect(pane.locator(".link-status")).to_have_text(
        f"ย้ายการสนทนาไปไว้ใต้เรื่อง {second.case_number} แล้ว")
    await expect(pane.locator(".c360 .facts").first).to_contain_text(second.case_number)
    conversation = await api_get(base, f"/conversations/{start.conversation_id}")
    assert conversation["case_id"] == second.case_id
    await expect(pane.locator(".history .msg")).to_have_count(2)  # the history is intact
