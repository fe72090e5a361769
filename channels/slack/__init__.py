"""Slack: back-office consultations in the departments' channels, supervisor alerts and
the `/onestop` command (setup, manifest and guarantees: README.md).

Wire it with `setup(app, center, signing_secret=…, bot_token=…)`; one URL,
`POST /slack/events`, takes events, interactivity and the slash command.
"""

from channels.slack.alerts import AlertBoard, AlertRules, SupervisorAlerts
from channels.slack.directory import DEFAULT_USERS_FILE, StaffDirectory, StaffMember
from channels.slack.outbox import SlackOutbox
from channels.slack.room import EVENTS_PATH, SLACK_KEY, SlackRoom, setup

__all__ = [
    "DEFAULT_USERS_FILE",
    "EVENTS_PATH",
    "SLACK_KEY",
    "AlertBoard",
    "AlertRules",
    "SlackOutbox",
    "SlackRoom",
    "StaffDirectory",
    "StaffMember",
    "SupervisorAlerts",
    "setup",
]
