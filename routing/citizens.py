"""The single citizen view: recognising one person across channels, merging and
unmerging records, vulnerable-group flags, "tell once" profile changes, and the Thai
PDPA duties (consent, subject access export, erasure).

Functions here work inside a caller's transaction (an `AsyncSession`), so that a
message and the identity decisions it causes are stored together.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from routing.config import CitizenRules
from routing.domain import IdentityHint, IdentityKind
from routing.errors import Conflict, NotFound
from routing.storage.tables import (
    AuditEntry,
    Case,
    Citizen,
    CitizenMerge,
    Consent,
    Conversation,
    Identity,
    MergeSuggestion,
    Message,
    Task,
    TimelineEvent,
)
from routing.storage.types import new_id

#: Profile fields a citizen record carries, with provenance (who verified it, when).
PROFILE_FIELDS = ("name_th", "name_en", "birth_date", "address", "gender")
#: Flags an agent or a kiosk may set; "elderly" and "child" are computed from age.
MANUAL_FLAGS = frozenset({"disability", "welfare_card", "homeless", "pregnant", "elderly",
                          "child"})


@dataclass
class Resolution:
    """Who a contact is, how sure we are, and what an agent should look at."""

    citizen: Citizen
    verified: bool
    merged: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------
# Recognition


async def resolve(s: AsyncSession, hints: Sequence[IdentityHint], now: datetime,
                  rules: CitizenRules) -> Resolution:
    """Find (or create) the citizen behind a new contact.

    A verified identifier links at once. Identifiers owned by different records are
    evidence that the records are one person: verified evidence merges them (or
    proposes a merge, per `rules.on_verified_conflict`); weak evidence proposes.
    """
    owners: list[tuple[bool, Citizen]] = []
    for hint in hints:
        identity = await _identity(s, hint.kind, hint.value)
        if identity is None:
            continue
        owner = await live(s, identity.citizen_id)
        owners.append((hint.verified or identity.verified, owner))
    strong = _unique(c for sure, c in owners if sure)
    weak = [c for c in _unique(c for sure, c in owners if not sure) if c not in strong]
    if strong:
        primary = max(strong, key=lambda c: c.updated_at)
    elif weak:
        primary = max(weak, key=lambda c: c.updated_at)
    else:
        primary = Citizen(id=new_id(), created_at=now, updated_at=now, flags=[], attributes={})
        s.add(primary)
        await s.flush()
    result = Resolution(primary, verified=any(h.verified for h in hints))
    for other in strong:
        if other.id == primary.id:
            continue
        if rules.on_verified_conflict == "merge":
            await merge(s, other.id, primary.id, now, None, "same verified identifier")
            result.merged.append(other.id)
        else:
            await suggest(s, primary.id, other.id, ["same verified identifier"], now)
            result.suggestions.append(other.id)
    for other in weak:
        if other.id != primary.id and rules.suggest_on_unverified_match:
            await suggest(s, primary.id, other.id, ["same unverified identifier"], now)
            result.suggestions.append(other.id)
    await attach(s, primary.id, hints, now, rules)
    return result


async def attach(s: AsyncSession, citizen_id: str, hints: Iterable[IdentityHint],
                 now: datetime, rules: CitizenRules) -> list[str]:
    """Add identifiers to a citizen; an identifier owned by someone else is evidence
    that they are one person (merged when verified per the rules, else suggested).
    Returns the ids of records merged into this one."""
    merged: list[str] = []
    for hint in hints:
        identity = await _identity(s, hint.kind, hint.value)
        if identity is None:
            s.add(Identity(id=new_id(), citizen_id=citizen_id, kind=str(hint.kind),
                           value=hint.value, verified=hint.verified,
                           verified_by=hint.verified_by,
                           verified_at=now if hint.verified else None, created_at=now))
            await s.flush()
            continue
        owner = await live(s, identity.citizen_id)
        if owner.id != citizen_id:
            if (hint.verified or identity.verified) and rules.on_verified_conflict == "merge":
                await merge(s, owner.id, citizen_id, now, None, f"same {hint.kind}")
                merged.append(owner.id)
            else:
                await suggest(s, citizen_id, owner.id, [f"same {hint.kind}"], now)
                continue
        if hint.verified and not identity.verified:
            identity.verified, identity.verified_by, identity.verified_at = (
                True, hint.verified_by, now)
    return merged


async def live(s: AsyncSession, citizen_id: str) -> Citizen:
    """The citizen record, following merges to the record that absorbed it."""
    citizen = await s.get(Citizen, citizen_id)
    if citizen is None:
        raise NotFound("citizen", citizen_id)
    seen = {citizen.id}
    while citizen.merged_into:
        citizen = await s.get_one(Citizen, citizen.merged_into)
        if citizen.id in seen:  # pragma: no cover - a cycle would be a bug; stop safely
            break
        seen.add(citizen.id)
    return citizen


async def suggest(s: AsyncSession, citizen_id: str, other_id: str, evidence: list[str],
                  now: datetime) -> None:
    """Record that two records may be one person (once per pair, evidence accumulated)."""
    a, b = sorted((citizen_id, other_id))
    row = await s.scalar(select(MergeSuggestion).where(MergeSuggestion.citizen_id == a,
                                                       MergeSuggestion.other_id == b))
    if row is None:
        s.add(MergeSuggestion(id=new_id(), citizen_id=a, other_id=b, evidence=evidence,
                              status="pending", created_at=now))
        await s.flush()
    elif row.status == "pending":
        row.evidence = sorted(set(row.evidence) | set(evidence))


async def suggest_by_profile(s: AsyncSession, citizen: Citizen, now: datetime,
                             rules: CitizenRules) -> None:
    """Same Thai name and birth date on another live record → a suggestion."""
    if not (rules.suggest_on_name_and_birth_date and citizen.name_th and citizen.birth_date):
        return
    others = (await s.scalars(select(Citizen).where(
        Citizen.name_th == citizen.name_th, Citizen.birth_date == citizen.birth_date,
        Citizen.id != citizen.id, Citizen.merged_into.is_(None), Citizen.erased_at.is_(None),
    ))).all()
    for other in others:
        await suggest(s, citizen.id, other.id, ["same name and birth date"], now)


# ---------------------------------------------------------------------------------------
# Merge and unmerge


async def merge(s: AsyncSession, source_id: str, target_id: str, now: datetime,
                actor_id: str | None, reason: str | None) -> CitizenMerge:
    """Fold `source` into `target`: identities, conversations, cases, tasks and the
    timeline move; conflicting profile fields follow "most recent verified wins" and
    the losing values are kept in the target's history; the source record stays (marked
    merged) so that `unmerge` can restore both exactly."""
    source, target = await live(s, source_id), await live(s, target_id)
    if source.id == target.id:
        raise Conflict("a citizen cannot be merged with itself")
    snapshot: dict[str, Any] = {
        "target_before": _profile_snapshot(target),
        "moved": {
            "identities": await _ids(s, Identity, Identity.citizen_id == source.id),
            "conversations": await _ids(s, Conversation, Conversation.citizen_id == source.id),
            "cases": await _ids(s, Case, Case.citizen_id == source.id),
            "tasks": await _ids(s, Task, Task.citizen_id == source.id),
            "timeline": await _ids(s, TimelineEvent, TimelineEvent.citizen_id == source.id),
            "consents": await _ids(s, Consent, Consent.citizen_id == source.id),
        },
    }
    await _move(s, snapshot["moved"], target.id)
    _combine_profiles(target, source, now)
    source.merged_into, source.updated_at = target.id, now
    target.updated_at = now
    record = CitizenMerge(id=new_id(), source_id=source.id, target_id=target.id, at=now,
                          actor_id=actor_id, reason=reason, snapshot=snapshot)
    s.add(record)
    await s.execute(update(MergeSuggestion).where(
        or_((MergeSuggestion.citizen_id == source.id) & (MergeSuggestion.other_id == target.id),
            (MergeSuggestion.citizen_id == target.id) & (MergeSuggestion.other_id == source.id)),
        MergeSuggestion.status == "pending",
    ).values(status="confirmed", decided_at=now, decided_by=actor_id))
    s.add(TimelineEvent(id=new_id(), at=now, kind="citizens_merged", citizen_id=target.id,
                        actor_id=actor_id, data={"merge_id": record.id, "source": source.id,
                                                 "reason": reason}))
    await s.flush()
    return record


async def unmerge(s: AsyncSession, merge_id: str, now: datetime,
                  actor_id: str | None) -> CitizenMerge:
    """Undo a merge: everything that moved goes back, and the target's profile is
    restored as it was before the merge."""
    record = await s.get(CitizenMerge, merge_id)
    if record is None:
        raise NotFound("merge", merge_id)
    if record.undone_at is not None:
        raise Conflict("this merge was already undone")
    later = await s.scalar(select(CitizenMerge).where(
        CitizenMerge.target_id == record.source_id, CitizenMerge.at > record.at,
        CitizenMerge.undone_at.is_(None)))
    if later is not None:
        raise Conflict("undo the later merge into the source record first")
    source = await s.get_one(Citizen, record.source_id)
    target = await s.get_one(Citizen, record.target_id)
    await _move(s, record.snapshot["moved"], source.id)
    _restore_profile(target, record.snapshot["target_before"])
    source.merged_into, source.updated_at = None, now
    target.updated_at = now
    record.undone_at, record.undone_by = now, actor_id
    s.add(TimelineEvent(id=new_id(), at=now, kind="citizens_unmerged", citizen_id=target.id,
                        actor_id=actor_id, data={"merge_id": record.id, "source": source.id}))
    await s.flush()
    return record


async def _ids(s: AsyncSession, model: Any, condition: Any) -> list[str]:
    return list((await s.scalars(select(model.id).where(condition))).all())


_MOVABLE: dict[str, Any] = {
    "identities": Identity, "conversations": Conversation, "cases": Case, "tasks": Task,
    "timeline": TimelineEvent, "consents": Consent,
}


async def _move(s: AsyncSession, moved: Mapping[str, list[str]], citizen_id: str) -> None:
    for name, ids in moved.items():
        model = _MOVABLE[name]
        for chunk in range(0, len(ids), 500):
            await s.execute(update(model).where(model.id.in_(ids[chunk:chunk + 500]))
                            .values(citizen_id=citizen_id))


def _profile_snapshot(citizen: Citizen) -> dict[str, Any]:
    return {
        "name_th": citizen.name_th, "name_en": citizen.name_en,
        "birth_date": citizen.birth_date.isoformat() if citizen.birth_date else None,
        "flags": list(citizen.flags or []), "attributes": dict(citizen.attributes or {}),
    }


def _restore_profile(citizen: Citizen, snap: Mapping[str, Any]) -> None:
    citizen.name_th, citizen.name_en = snap["name_th"], snap["name_en"]
    citizen.birth_date = date.fromisoformat(snap["birth_date"]) if snap["birth_date"] else None
    citizen.flags, citizen.attributes = list(snap["flags"]), dict(snap["attributes"])


def _combine_profiles(target: Citizen, source: Citizen, now: datetime) -> None:
    attrs = dict(target.attributes or {})
    provenance = dict(attrs.get("provenance", {}))
    source_provenance = (source.attributes or {}).get("provenance", {})
    history = list(attrs.get("history", []))
    for name in PROFILE_FIELDS:
        mine, theirs = get_field(target, name), get_field(source, name)
        if theirs is None:
            continue
        if mine is None or _rank(source_provenance.get(name)) > _rank(provenance.get(name)):
            if mine is not None:
                history.append({"field": name, "value": _plain(mine),
                                "replaced_at": now.isoformat(),
                                "provenance": provenance.get(name)})
            set_field(target, name, theirs, attrs)
            if name in source_provenance:
                provenance[name] = source_provenance[name]
        elif mine != theirs:
            history.append({"field": name, "value": _plain(theirs), "from": source.id,
                            "provenance": source_provenance.get(name)})
    attrs["provenance"], attrs["history"] = provenance, history
    target.attributes = attrs
    target.flags = sorted(set(target.flags or []) | set(source.flags or []))


def _rank(provenance: Mapping[str, Any] | None) -> tuple[bool, str]:
    """Most recent verified wins: verified beats unverified, then the newer."""
    if not provenance:
        return (False, "")
    return (bool(provenance.get("verified_by")), str(provenance.get("at", "")))


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def get_field(citizen: Citizen, name: str) -> Any:
    """A profile field, wherever it is stored."""
    if name in ("name_th", "name_en", "birth_date"):
        return getattr(citizen, name)
    return (citizen.attributes or {}).get(name)


def set_field(citizen: Citizen, name: str, value: Any, attrs: dict[str, Any]) -> None:
    if name in ("name_th", "name_en"):
        setattr(citizen, name, value)
    elif name == "birth_date":
        citizen.birth_date = date.fromisoformat(value) if isinstance(value, str) else value
    else:
        attrs[name] = value


async def update_profile(s: AsyncSession, citizen_id: str, changes: Mapping[str, Any],
                         verified_by: str | None, now: datetime) -> tuple[Citizen, list[str]]:
    """Record profile changes once, for everywhere ("tell once"); returns the fields
    that changed. Each keeps its provenance; the old value goes to the history."""
    citizen = await live(s, citizen_id)
    attrs = dict(citizen.attributes or {})
    provenance = dict(attrs.get("provenance", {}))
    history = list(attrs.get("history", []))
    changed = []
    for name, value in changes.items():
        if name not in PROFILE_FIELDS:
            raise ValueError(f"{name}: not a profile field ({', '.join(PROFILE_FIELDS)})")
        old = get_field(citizen, name)
        if _plain(old) == _plain(value):
            continue
        if old is not None:
            history.append({"field": name, "value": _plain(old), "replaced_at": now.isoformat(),
                            "provenance": provenance.get(name)})
        set_field(citizen, name, value, attrs)
        provenance[name] = {"verified_by": verified_by, "at": now.isoformat()}
        changed.append(name)
    attrs["provenance"], attrs["history"] = provenance, history
    citizen.attributes, citizen.updated_at = attrs, now
    return citizen, changed


# ---------------------------------------------------------------------------------------
# Differentiate


def vulnerability(citizen: Citizen, today: date, rules: CitizenRules) -> list[str]:
    """Vulnerable-group flags: set ones (disability card, welfare card…) plus age groups."""
    flags = set(citizen.flags or [])
    if citizen.birth_date:
        age = today.year - citizen.birth_date.year - (
            (today.month, today.day) < (citizen.birth_date.month, citizen.birth_date.day))
        if age >= rules.elderly_age:
            flags.add("elderly")
        if age < rules.child_age:
            flags.add("child")
    return sorted(flags)


# ---------------------------------------------------------------------------------------
# PDPA


async def export(s: AsyncSession, citizen_id: str) -> dict[str, Any]:
    """Everything held about a citizen (subject access request), as plain data."""
    citizen = await live(s, citizen_id)
    ids = [citizen.id, *await _ids(s, Citizen, Citizen.merged_into == citizen.id)]

    async def rows(model: Any, condition: Any) -> list[dict[str, Any]]:
        return [_row(r) for r in (await s.scalars(select(model).where(condition))).all()]

    conversations = await rows(Conversation, Conversation.citizen_id.in_(ids))
    return {
        "citizen": _row(citizen),
        "merged_records": await rows(Citizen, Citizen.merged_into == citizen.id),
        "identities": await rows(Identity, Identity.citizen_id.in_(ids)),
        "consents": await rows(Consent, Consent.citizen_id.in_(ids)),
        "cases": await rows(Case, Case.citizen_id.in_(ids)),
        "conversations": conversations,
        "messages": await rows(Message, Message.conversation_id.in_(
            [c["id"] for c in conversations])),
        "timeline": await rows(TimelineEvent, TimelineEvent.citizen_id.in_(ids)),
        "access_log": await rows(AuditEntry, AuditEntry.citizen_id.in_(ids)),
    }


async def erase(s: AsyncSession, citizen_id: str, now: datetime) -> None:
    """Anonymise the person and keep the statistics: identities are deleted, names,
    birth date, address and message texts are removed; cases keep their category,
    times, channel and satisfaction so the reports stay true."""
    citizen = await live(s, citizen_id)
    ids = [citizen.id, *await _ids(s, Citizen, Citizen.merged_into == citizen.id)]
    for row in (await s.scalars(select(Identity).where(Identity.citizen_id.in_(ids)))).all():
        await s.delete(row)
    conversation_ids = await _ids(s, Conversation, Conversation.citizen_id.in_(ids))
    await s.execute(update(Message).where(Message.conversation_id.in_(conversation_ids))
                    .values(body="[erased]", subject=None, attachments=[], extra={},
                            author_name=None))
    await s.execute(update(Conversation).where(Conversation.id.in_(conversation_ids))
                    .values(subject=None, attributes={}))
    await s.execute(update(Case).where(Case.citizen_id.in_(ids))
                    .values(subject=None, description=None, resolution=None))
    await s.execute(update(TimelineEvent).where(TimelineEvent.citizen_id.in_(ids))
                    .values(data={}))
    for record in (await s.scalars(select(Citizen).where(Citizen.id.in_(ids)))).all():
        age_group = None
        if record.birth_date:
            age_group = f"{(now.year - record.birth_date.year) // 10 * 10}s"
        record.name_th = record.name_en = None
        record.birth_date = None
        record.attributes = {"age_group": age_group} if age_group else {}
        record.erased_at, record.updated_at = now, now


def _row(obj: Any) -> dict[str, Any]:
    out = {}
    for column in obj.__table__.columns:
        value = getattr(obj, column.key)
        out[column.key] = value.isoformat() if isinstance(value, date | datetime) else value
    return out


async def _identity(s: AsyncSession, kind: IdentityKind | str, value: str) -> Identity | None:
    return await s.scalar(select(Identity).where(Identity.kind == str(kind),
                                                 Identity.value == value))


def _unique(citizens: Iterable[Citizen]) -> list[Citizen]:
    seen: dict[str, Citizen] = {}
    for c in citizens:
        seen.setdefault(c.id, c)
    return list(seen.values())
