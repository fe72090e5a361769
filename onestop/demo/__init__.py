"""Demo data for `make run`: staff with printed logins (the catalogue and queues are the
deployment's own files in config/)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from routing import ContactCenter, hash_password
from routing.config import load_file

AGENTS_FILE = Path(__file__).resolve().parent / "agents.yaml"


class DemoAgent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str
    display_name: str
    password: str
    roles: list[str]
    skills: dict[str, int] = Field(default_factory=dict)
    languages: list[str] = Field(default_factory=lambda: ["th"])
    capacity: dict[str, int] = Field(default_factory=dict)


class DemoAgents(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agents: list[DemoAgent]


async def seed_demo(center: ContactCenter) -> list[DemoAgent]:
    """Create the demo staff (idempotent: existing users keep their presence)."""
    demo = load_file(AGENTS_FILE, DemoAgents)
    for agent in demo.agents:
        existing = await center.agent_by_username(agent.username)
        if existing is not None:
            continue
        await center.upsert_agent(
            username=agent.username, display_name=agent.display_name,
            password_hash=_demo_hash(agent.password), roles=agent.roles,
            skills=agent.skills, languages=agent.languages, capacity=agent.capacity,
        )
    return demo.agents


@lru_cache(maxsize=32)
def _demo_hash(password: str) -> str:
    # argon2 is slow on purpose; the demo passwords are hashed once per process.
    return hash_password(password)
