"""Who a Slack user is at OneStop: a small YAML file owned by this room maps Slack user
ids (`U…`, stable, unlike display names) to staff usernames.

```yaml
users:
  U0123ABCD: somsri        # Slack user id: OneStop username
  U0456EFGH: supervisor
```

Anyone not in the file is treated as back-office staff: they may answer and close
consultations in their department's channel, but may not look up cases.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from routing import ContactCenter

#: The mapping shipped with the room (empty until an administrator fills it in).
DEFAULT_USERS_FILE = Path(__file__).resolve().parent / "users.yaml"
#: Roles that may look up a case with `/onestop case …`.
CASE_LOOKUP_ROLES = frozenset({"agent", "supervisor"})


class _UsersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    users: dict[str, str] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StaffMember:
    """A Slack user mapped to an active OneStop staff account."""

    agent_id: str
    username: str
    display_name: str
    roles: tuple[str, ...]

    @property
    def role(self) -> str:
        for role in ("admin", "supervisor", "agent"):
            if role in self.roles:
                return role
        return self.roles[0] if self.roles else "agent"

    @property
    def may_look_up_cases(self) -> bool:
        return bool(CASE_LOOKUP_ROLES & set(self.roles))


class StaffDirectory:
    """Slack user id → OneStop staff member (looked up in the core on every use, so a
    deactivated account stops working at once)."""

    def __init__(self, users: Mapping[str, str] | None = None) -> None:
        self.users = dict(users or {})

    @classmethod
    def from_file(cls, path: Path | str = DEFAULT_USERS_FILE) -> StaffDirectory:
        """Read the mapping; a malformed file raises ValueError naming the file."""
        path = Path(path)
        if not path.exists():
            return cls()
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            return cls(_UsersFile.model_validate(raw).users)
        except (yaml.YAMLError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from exc

    async def lookup(self, center: ContactCenter, slack_user_id: str | None) -> StaffMember | None:
        username = self.users.get(slack_user_id or "")
        if not username:
            return None
        agent = await center.agent_by_username(username)
        if agent is None or not agent.active:
            return None
        return StaffMember(agent.id, agent.username, agent.display_name,
                           tuple(str(r) for r in agent.roles or ()))
