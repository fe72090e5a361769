"""The phone hotline (Twilio Voice and SMS): menus as data, self-service, queueing with
position announcements, callbacks, voicemail, the officer's leg, the satisfaction survey,
and a browser phone that plays Twilio's part. See ivr/README.md.

The composition root calls `setup(app, center, ...)`; nothing else is needed.
"""

from ivr.conference import ConferenceCall, Transfers, agent_identity
from ivr.hotline import CallState, Hotline, HotlineConfig
from ivr.menus import MENUS_FILE, MenusFile, load_menus
from ivr.twilio_rest import RebasedHttpClient, SmsAdapter, TwilioRest
from ivr.webapp import HOTLINE_KEY, setup

__all__ = [
    "HOTLINE_KEY",
    "MENUS_FILE",
    "CallState",
    "ConferenceCall",
    "Hotline",
    "HotlineConfig",
    "MenusFile",
    "RebasedHttpClient",
    "SmsAdapter",
    "Transfers",
    "TwilioRest",
    "agent_identity",
    "load_menus",
    "setup",
]
