"""Staff sign-in: argon2 password hashes, server-side sessions, lockout, logout everywhere."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select

from routing.ports import Clock
from routing.storage import Database
from routing.storage.tables import Agent, StaffSession

_hasher = PasswordHasher()
#: A hash to verify against when the user does not exist, so timing reveals nothing.
_DUMMY_HASH = _hasher.hash("not a real password")


def hash_password(password: str) -> str:
    """An argon2id hash of `password`."""
    return _hasher.hash(password)


class LoginFailed(Exception):
    """Wrong user name or password, or the account is locked (the message says which)."""

    def __init__(self, message: str, *, locked_until: datetime | None = None) -> None:
        super().__init__(message)
        self.locked_until = locked_until


@dataclass(frozen=True, slots=True)
class StaffIdentity:
    """The signed-in staff member behind a request."""

    agent_id: str
    username: str
    display_name: str
    roles: tuple[str, ...]
    csrf_token: str
    session_id: str

    def has_role(self, *roles: str) -> bool:
        return any(r in self.roles for r in roles) or "admin" in self.roles


class StaffAuth:
    """Sign-in and sessions for agents, supervisors and admins."""

    def __init__(self, db: Database, clock: Clock, *, max_failures: int = 5,
                 lockout: timedelta = timedelta(minutes=15),
                 session_lifetime: timedelta = timedelta(hours=12)) -> None:
        self.db = db
        self.clock = clock
        self.max_failures = max_failures
        self.lockout = lockout
        self.session_lifetime = session_lifetime

    async def login(self, username: str, password: str) -> tuple[str, StaffIdentity]:
        """Check the password; return a new session token and who signed in.

        After `max_failures` wrong passwords the account is locked for `lockout`.
        """
        now = self.clock.now()
        failure: LoginFailed | None = None
        async with self.db.sessions() as s, s.begin():
            agent = await s.scalar(select(Agent).where(Agent.username == username))
            if agent is None or not agent.active:
                await asyncio.to_thread(_verify, _DUMMY_HASH, password)
                failure = LoginFailed("wrong user name or password")
            elif agent.locked_until and agent.locked_until > now:
                failure = LoginFailed("account locked after repeated failures",
                                      locked_until=agent.locked_until)
            # argon2 is slow on purpose: off the event loop, so sign-ins do not stall calls.
            elif not await asyncio.to_thread(_verify, agent.password_hash, password):
                # Counted in this transaction, which commits: the failure must stick.
                agent.failed_logins += 1
                if agent.failed_logins >= self.max_failures:
                    agent.locked_until, agent.failed_logins = now + self.lockout, 0
                failure = LoginFailed("wrong user name or password")
            else:
                agent.failed_logins, agent.locked_until = 0, None
                token = secrets.token_urlsafe(32)
                csrf = secrets.token_urlsafe(24)
                session_id = _digest(token)
                s.add(StaffSession(id=session_id, agent_id=agent.id, csrf_token=csrf,
                                   created_at=now, last_seen_at=now,
                                   expires_at=now + self.session_lifetime))
                identity = StaffIdentity(agent.id, agent.username, agent.display_name,
                                         tuple(agent.roles or ()), csrf, session_id)
        if failure is not None:
            raise failure
        return token, identity

    async def authenticate(self, token: str) -> StaffIdentity | None:
        """Who holds this session token (None if unknown or expired)."""
        now = self.clock.now()
        async with self.db.sessions() as s, s.begin():
            session = await s.get(StaffSession, _digest(token))
            if session is None or session.expires_at <= now:
                return None
            agent = await s.get(Agent, session.agent_id)
            if agent is None or not agent.active:
                return None
            if (now - session.last_seen_at) > timedelta(minutes=1):
                session.last_seen_at = now
            return StaffIdentity(agent.id, agent.username, agent.display_name,
                                 tuple(agent.roles or ()), session.csrf_token, session.id)

    async def logout(self, token: str) -> None:
        """End one session."""
        async with self.db.sessions() as s, s.begin():
            await s.execute(delete(StaffSession).where(StaffSession.id == _digest(token)))

    async def logout_everywhere(self, agent_id: str) -> int:
        """End every session of the agent; returns how many were ended."""
        async with self.db.sessions() as s, s.begin():
            result = await s.execute(delete(StaffSession).where(StaffSession.agent_id == agent_id))
            return int(getattr(result, "rowcount", 0) or 0)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
