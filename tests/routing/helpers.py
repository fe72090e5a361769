"""Small routing configurations for tests, built in code; waiting for the core's
background work."""

from __future__ import annotations

import asyncio
from typing import Any

import yaml

from routing import ContactCenter
from routing.config import QueuesFile, Settings, WorkflowFile, compile_settings


async def settle(center: ContactCenter) -> None:
    """Let the core's background work triggered by an ingest (the bot's answer or the
    hand-off after it) finish."""
    for _ in range(50):
        await asyncio.sleep(0)
    while center._background:
        await asyncio.gather(*list(center._background), return_exceptions=True)


def settings_from(queues: str, workflow: str) -> Settings:
    """Compile settings from two YAML snippets (the same schema as config/*.yaml)."""
    q: Any = yaml.safe_load(queues)
    w: Any = yaml.safe_load(workflow)
    return compile_settings(QueuesFile.model_validate(q), WorkflowFile.model_validate(w))


SMALL_QUEUES = """
channels:
  voice: {service_level: {threshold_seconds: 20, target: 0.8}, reservation_timeout: 20, wrap_up_seconds: 5}
  chat: {service_level: {threshold_seconds: 60, target: 0.8}, reservation_timeout: 20}
  email: {service_level: {threshold_seconds: 86400, target: 0.95}, reservation_timeout: 20}
capacity_rules: {exclusive: {voice: []}}
queues:
  - {id: general, name: {th: ทั่วไป, en: General}, agents: "'general' in skills"}
  - {id: tax, name: {th: ภาษี, en: Tax}, agents: "skills.tax >= 1"}
"""

SMALL_WORKFLOW = """
filters:
  - name: tax first
    when: "category == 'tax'"
    targets:
      - {queue: tax, timeout: 30}
      - {queue: general}
  - name: last agent
    when: "last_agent_id != null"
    targets:
      - {queue: general, agents: "id == task.last_agent_id", timeout: 10}
      - {queue: general}
default:
  - {queue: general}
"""


def small_settings() -> Settings:
    return settings_from(SMALL_QUEUES, SMALL_WORKFLOW)
