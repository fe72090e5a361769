"""A phone that plays Twilio's part toward the hotline: signs every request as Twilio
does, parses the TwiML with xml.etree, checks that only Twilio's verbs, nouns and
attributes are used, and follows the call where the caller would go."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from urllib.parse import urlsplit

from aiohttp.test_utils import TestClient
from twilio.request_validator import RequestValidator

PUBLIC_URL = "https://hotline.example.go.th"
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
OUR_NUMBER = "+6621234567"

# Twilio's TwiML vocabulary (https://www.twilio.com/docs/voice/twiml): element → allowed
# attributes and children. Anything else in a response is a mistake Twilio would reject.
TWIML: dict[str, tuple[set[str], set[str]]] = {
    "Response": (set(), {"Say", "Play", "Pause", "Gather", "Redirect", "Enqueue", "Leave",
                         "Dial", "Record", "Hangup", "Reject"}),
    "Say": ({"voice", "language", "loop"}, set()),
    "Play": ({"loop", "digits"}, set()),
    "Pause": ({"length"}, set()),
    "Gather": ({"input", "action", "method", "timeout", "speechTimeout", "maxSpeechTime",
                "profanityFilter", "finishOnKey", "numDigits", "partialResultCallback",
                "partialResultCallbackMethod", "language", "hints", "bargeIn",
                "actionOnEmptyResult", "speechModel", "enhanced"}, {"Say", "Play", "Pause"}),
    "Redirect": ({"method"}, set()),
    "Enqueue": ({"action", "method", "waitUrl", "waitUrlMethod", "workflowSid",
                 "maxQueueSize"}, {"Task"}),
    "Leave": (set(), set()),
    "Hangup": (set(), set()),
    "Reject": ({"reason"}, set()),
    "Dial": ({"action", "method", "timeout", "hangupOnStar", "timeLimit", "callerId",
              "record", "trim", "answerOnBridge", "ringTone", "recordingStatusCallback",
              "recordingStatusCallbackMethod", "recordingStatusCallbackEvent"},
             {"Number", "Client", "Queue", "Conference", "Sip"}),
    "Conference": ({"muted", "beep", "startConferenceOnEnter", "endConferenceOnExit",
                    "waitUrl", "waitMethod", "maxParticipants", "record", "region", "trim",
                    "coach", "participantLabel", "jitterBufferSize", "statusCallback",
                    "statusCallbackEvent", "statusCallbackMethod", "recordingStatusCallback",
                    "recordingStatusCallbackMethod", "recordingStatusCallbackEvent",
                    "eventCallbackUrl"}, set()),
    "Client": ({"url", "method", "statusCallbackEvent", "statusCallback",
                "statusCallbackMethod"}, {"Identity", "Parameter"}),
    "Number": ({"sendDigits", "url", "method", "statusCallbackEvent", "statusCallback",
                "statusCallbackMethod", "byoc", "machineDetection"}, set()),
    "Identity": (set(), set()),
    "Parameter": ({"name", "value"}, set()),
    "Record": ({"action", "method", "timeout", "finishOnKey", "maxLength", "playBeep", "trim",
                "recordingStatusCallback", "recordingStatusCallbackMethod",
                "recordingStatusCallbackEvent", "transcribe", "transcribeCallback"}, set()),
}
URL_ATTRIBUTES = {"action", "waitUrl", "transcribeCallback", "statusCallback"}
BOOLEAN_ATTRIBUTES = {"startConferenceOnEnter", "endConferenceOnExit", "muted", "answerOnBridge",
                      "actionOnEmptyResult", "playBeep", "transcribe", "hangupOnStar", "coach"}
LANGUAGES = {"th-TH", "en-US"}

_sids = itertools.count(1)


def new_sid(prefix: str = "CA") -> str:
    return f"{prefix}{next(_sids):032x}"


def sign(url: str, params: Mapping[str, str], token: str = AUTH_TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, params))


def check_twiml(root: ET.Element) -> None:
    """Only Twilio's elements and attributes, with sane values."""

    def visit(el: ET.Element, parent: str | None) -> None:
        assert el.tag in TWIML, f"<{el.tag}> is not TwiML"
        attributes, _children = TWIML[el.tag]
        assert set(el.attrib) <= attributes, f"<{el.tag}> has {set(el.attrib) - attributes}"
        if parent is not None:
            assert el.tag in TWIML[parent][1], f"<{el.tag}> cannot be inside <{parent}>"
        for name in URL_ATTRIBUTES & set(el.attrib):
            assert el.attrib[name].startswith(PUBLIC_URL + "/ivr/"), el.attrib[name]
        for name in {"method", "waitMethod", "waitUrlMethod"} & set(el.attrib):
            assert el.attrib[name] in ("GET", "POST"), (el.tag, name, el.attrib[name])
        for name in BOOLEAN_ATTRIBUTES & set(el.attrib):
            assert el.attrib[name] in ("true", "false"), (el.tag, name, el.attrib[name])
        if el.tag == "Conference":
            assert el.attrib.get("beep", "true") in ("true", "false", "onEnter", "onExit")
            assert (el.text or "").strip(), "a <Conference> needs a name"
        if el.tag == "Dial":
            nouns = [child.tag for child in el]
            assert len(nouns) <= 1 or set(nouns) <= {"Number", "Client", "Sip"}, (
                f"<Dial> cannot mix {nouns}")
        if el.tag == "Say":
            assert el.attrib.get("language") in LANGUAGES and (el.text or "").strip()
        if el.tag == "Gather":
            assert el.attrib["input"] in ("dtmf", "speech", "dtmf speech")
            assert el.attrib.get("language", "th-TH") in LANGUAGES
        for child in el:
            visit(child, el.tag)

    assert root.tag == "Response"
    visit(root, None)


class Phone:
    """One call, as Twilio would place it."""

    def __init__(self, client: TestClient, *, caller: str = "+66812345678",
                 call_sid: str | None = None, token: str = AUTH_TOKEN, called: str = OUR_NUMBER,
                 direction: str = "inbound") -> None:
        self.client = client
        self.caller = caller
        self.called = called
        self.direction = direction
        self.sid = call_sid or new_sid()
        self.token = token
        self.doc: ET.Element = ET.Element("Response")
        self.queue: ET.Element | None = None  # the <Enqueue> the caller waits in
        self.history: list[str] = []

    # -- requests -------------------------------------------------------------------------

    def base_params(self) -> dict[str, str]:
        return {"CallSid": self.sid, "AccountSid": "AC" + "0" * 32, "From": self.caller,
                "Caller": self.caller, "To": self.called, "Called": self.called,
                "CallStatus": "in-progress", "Direction": self.direction,
                "ApiVersion": "2010-04-01"}

    async def post(self, url: str, extra: Mapping[str, str] | None = None, *,
                   expect: int = 200) -> ET.Element:
        params = {**self.base_params(), **(extra or {})}
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" == PUBLIC_URL, url
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        response = await self.client.post(path, data=params, headers={
            "X-Twilio-Signature": sign(url, params, self.token)})
        text = await response.text()
        assert response.status == expect, text
        if expect != 200:
            return ET.Element("Response")
        assert response.content_type == "text/xml"
        root = ET.fromstring(text)
        check_twiml(root)
        self.history.append(parts.path)
        return root

    async def dial_in(self) -> ET.Element:
        self.doc = await self.post(f"{PUBLIC_URL}/ivr/voice", {"CallStatus": "ringing"})
        return self.doc

    # -- what the caller hears ------------------------------------------------------------

    def said(self, doc: ET.Element | None = None) -> str:
        root = self.doc if doc is None else doc
        return " | ".join((el.text or "").strip() for el in root.iter("Say"))

    def verbs(self, doc: ET.Element | None = None) -> list[str]:
        return [el.tag for el in (self.doc if doc is None else doc)]

    def gather(self) -> ET.Element:
        found = self.doc.find("Gather")
        assert found is not None, f"no <Gather> in {self.verbs()}: {self.said()}"
        return found

    # -- what the caller does -------------------------------------------------------------

    async def press(self, digits: str) -> ET.Element:
        gather = self.gather()
        self.doc = await self.post(gather.attrib["action"], {"Digits": digits})
        return self._track()

    async def speak(self, words: str) -> ET.Element:
        gather = self.gather()
        assert "speech" in gather.attrib["input"]
        self.doc = await self.post(gather.attrib["action"],
                                   {"SpeechResult": words, "Confidence": "0.9"})
        return self._track()

    async def stay_silent(self) -> ET.Element:
        gather = self.gather()
        assert gather.attrib.get("actionOnEmptyResult") == "true"
        self.doc = await self.post(gather.attrib["action"], {})
        return self._track()

    def _track(self) -> ET.Element:
        enqueue = self.doc.find("Enqueue")
        if enqueue is not None:
            self.queue = enqueue
        return self.doc

    async def hold(self, position: int = 1) -> ET.Element:
        """Twilio fetches the wait URL (again); the TwiML is what the caller hears."""
        assert self.queue is not None, "the caller is not in a queue"
        self.doc = await self.post(self.queue.attrib["waitUrl"], {
            "QueuePosition": str(position), "QueueSid": "QU" + "1" * 32,
            "QueueTime": "12", "AvgQueueTime": "30", "CurrentQueueSize": str(position)})
        return self.doc

    async def leave_queue(self, result: str = "leave") -> ET.Element:
        assert self.queue is not None
        self.doc = await self.post(self.queue.attrib["action"], {
            "QueueResult": result, "QueueSid": "QU" + "1" * 32, "QueueTime": "40"})
        self.queue = None
        return self._track()

    async def record(self, recording_sid: str = "RE" + "7" * 32, seconds: str = "14"
                     ) -> ET.Element:
        record = self.doc.find("Record")
        assert record is not None, self.verbs()
        self.recording = record
        self.doc = await self.post(record.attrib["action"], {
            "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/"
                            f"{recording_sid}", "RecordingSid": recording_sid,
            "RecordingDuration": seconds, "Digits": "#"})
        return self.doc

    async def transcribed(self, text: str, recording_sid: str = "RE" + "7" * 32) -> None:
        await self.post(self.recording.attrib["transcribeCallback"], {
            "TranscriptionText": text, "TranscriptionStatus": "completed",
            "RecordingSid": recording_sid, "TranscriptionSid": "TR" + "1" * 32})

    async def dial_ends(self, status: str = "completed") -> ET.Element:
        dial = self.doc.find("Dial")
        assert dial is not None, self.verbs()
        self.doc = await self.post(dial.attrib["action"], {"DialCallStatus": status,
                                                           "DialCallDuration": "95"})
        return self.doc

    async def hang_up(self, sequence: str | None = None) -> None:
        """The caller hangs up: Twilio sends the status callback (and, when queued, the
        Enqueue action with QueueResult=hangup)."""
        if self.queue is not None:
            await self.leave_queue("hangup")
        await self.status("completed", sequence)

    async def status(self, status: str, sequence: str | None = None,
                     url: str = f"{PUBLIC_URL}/ivr/status") -> None:
        extra = {"CallStatus": status, "CallDuration": "61", "Timestamp": "now"}
        if sequence is not None:
            extra["SequenceNumber"] = sequence
        await self.post(url, extra)
