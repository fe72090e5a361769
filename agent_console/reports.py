"""Reports over a period, computed in SQL (read only): volume, service level, ASA, AHT,
abandonment, one-stop resolution, bot containment and satisfaction, by queue, channel,
agent or category.

A task is counted in the period it was created in; a conversation in the period it
started in. Service level = answered within the channel's threshold ÷ (answered +
abandoned after the threshold), as on the live wall. Bot containment = conversations the
bot answered that never became a task for a person ÷ conversations the bot answered.
The exact formulas are in agent_console/README.md ("Report definitions").
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Float, and_, case, cast, exists, func, literal, literal_column, or_, select

from routing import (
    AgentRecord,
    Author,
    Case,
    ContactCenter,
    Conversation,
    Message,
    Task,
    TaskStatus,
)

BANGKOK = ZoneInfo("Asia/Bangkok")
DIMENSIONS = ("queue", "channel", "agent", "category")


@dataclass(frozen=True)
class ReportRow:
    group: str
    volume: int
    answered: int
    abandoned: int
    service_level: float | None
    asa_seconds: float | None
    aht_seconds: float | None
    abandonment: float | None
    one_stop: float | None
    csat: float | None
    conversations: int = 0
    bot_handled: int = 0
    bot_contained: int = 0
    bot_containment: float | None = None


#: The figures a report shows, in order: (field, catalogue key, kind) — kind says how a
#: value is shown (count, share as a percentage, seconds, score).
FIGURES: tuple[tuple[str, str, str], ...] = (
    ("conversations", "report.conversations", "count"),
    ("volume", "report.volume", "count"),
    ("answered", "answered", "count"),
    ("service_level", "service_level", "share"),
    ("asa_seconds", "report.asa", "seconds"),
    ("aht_seconds", "report.aht", "seconds"),
    ("abandonment", "report.abandonment", "share"),
    ("one_stop", "report.one_stop", "share"),
    ("bot_containment", "report.bot_containment", "share"),
    ("csat", "report.csat", "score"),
)


def period(start: date, end: date) -> tuple[datetime, datetime]:
    """Whole days in Bangkok time, `end` included, as UTC-aware datetimes."""
    return (datetime.combine(start, time(), BANGKOK),
            datetime.combine(end + timedelta(days=1), time(), BANGKOK))


async def report(center: ContactCenter, start: datetime, end: datetime,
                 by: str) -> list[ReportRow]:
    """One row per group with every figure, for tasks created (and conversations started)
    in [start, end). `by="all"` gives one row over everything (the totals)."""
    if by not in DIMENSIONS and by != "all":
        raise ValueError(f"by: {by!r} is not one of {', '.join(DIMENSIONS)}")
    thresholds = {str(ch): spec.service_level.threshold_seconds
                  for ch, spec in center.settings.channels.items()}
    threshold = case(*[(Task.channel == ch, seconds) for ch, seconds in thresholds.items()],
                     else_=literal(60.0))
    answered = Task.assigned_at.is_not(None)
    abandoned = Task.status == str(TaskStatus.ABANDONED)
    dialect = center.db.engine.dialect.name
    if dialect == "sqlite":
        handle = (func.julianday(Task.finished_at) - func.julianday(Task.assigned_at)) * 86400.0
    else:
        handle = func.extract("epoch", Task.finished_at - Task.assigned_at)
    completed = and_(Task.status == str(TaskStatus.COMPLETED), answered,
                     Task.finished_at.is_not(None))
    group = {
        "queue": Task.queue_id,
        "channel": Task.channel,
        "agent": func.coalesce(AgentRecord.display_name, "—"),
        "category": func.coalesce(Case.category, "—"),
        "all": literal_column("'all'"),
    }[by]
    query = (
        select(
            group.label("grp"),
            func.count(Task.id),
            func.sum(case((answered, 1), else_=0)),
            func.sum(case((abandoned, 1), else_=0)),
            func.sum(case((and_(answered, Task.wait_seconds <= threshold), 1), else_=0)),
            func.sum(case((and_(abandoned, or_(Task.wait_seconds.is_(None),
                                               Task.wait_seconds > threshold)), 1), else_=0)),
            func.avg(case((answered, Task.wait_seconds))),
            func.avg(case((completed, cast(handle, Float)))),
            func.count(func.distinct(case((Case.one_stop.is_(True), Case.id)))),
            func.count(func.distinct(case((Case.one_stop.is_not(None), Case.id)))),
            func.avg(cast(Case.csat, Float)),
        )
        .select_from(Task)
        .join(Case, Case.id == Task.case_id)
        .outerjoin(AgentRecord, AgentRecord.id == Task.agent_id)
        .where(Task.created_at >= start, Task.created_at < end)
    )
    if by != "all":
        query = query.group_by(group).order_by(group)
    async with center.db.sessions() as s:
        rows = (await s.execute(query)).all()
    bots = await _bot_containment(center, start, end, by)
    out = []
    for grp, volume, ans, aban, within, late_aban, asa, aht, os_yes, os_all, csat in rows:
        if not volume:
            continue  # "all" over an empty period
        ans, aban = int(ans or 0), int(aban or 0)
        denominator = ans + int(late_aban or 0)
        out.append(ReportRow(
            group=str(grp or "—"), volume=int(volume), answered=ans, abandoned=aban,
            service_level=_ratio(int(within or 0), denominator),
            asa_seconds=_round(asa), aht_seconds=_round(aht),
            abandonment=_ratio(aban, int(volume)),
            one_stop=_ratio(int(os_yes or 0), int(os_all or 0)),
            csat=_round(csat, 2), **bots.pop(str(grp or "—"), _no_bot())))
    for grp, figures in bots.items():  # groups with conversations but no task (bot only)
        out.append(ReportRow(group=grp, volume=0, answered=0, abandoned=0, service_level=None,
                             asa_seconds=None, aht_seconds=None, abandonment=None,
                             one_stop=None, csat=None, **figures))
    return sorted(out, key=lambda r: r.group)


def _no_bot() -> dict[str, Any]:
    return {"conversations": 0, "bot_handled": 0, "bot_contained": 0, "bot_containment": None}


async def _bot_containment(center: ContactCenter, start: datetime, end: datetime,
                           by: str) -> dict[str, dict[str, Any]]:
    """Per group: conversations started in the period, those the bot answered (at least
    one message by the bot), and those of them that never became a task for a person.

    By queue or agent there is nothing to contain (a contained conversation has neither),
    so only the conversation count is given by queue, and nothing by agent."""
    if by == "agent":
        return {}
    group = {
        "queue": Conversation.queue_id,
        "channel": Conversation.channel,
        "category": func.coalesce(Case.category, "—"),
        "all": literal_column("'all'"),
    }[by]
    bot = exists().where(Message.conversation_id == Conversation.id,
                         Message.author == str(Author.BOT))
    handed = exists().where(Task.conversation_id == Conversation.id)
    query: Any = (
        select(group.label("grp"), func.count(Conversation.id),
               func.sum(case((bot, 1), else_=0)),
               func.sum(case((and_(bot, ~handed), 1), else_=0)))
        .select_from(Conversation)
        .join(Case, Case.id == Conversation.case_id)
        .where(Conversation.started_at >= start, Conversation.started_at < end)
    )
    if by != "all":
        query = query.group_by(group)
    async with center.db.sessions() as s:
        rows = (await s.execute(query)).all()
    out: dict[str, dict[str, Any]] = {}
    for grp, conversations, handled, contained in rows:
        if not conversations:
            continue
        if by == "queue":
            if grp is None:
                continue  # conversations no person was ever asked to take
            figures = {**_no_bot(), "conversations": int(conversations)}
        else:
            handled, contained = int(handled or 0), int(contained or 0)
            figures = {"conversations": int(conversations), "bot_handled": handled,
                       "bot_contained": contained,
                       "bot_containment": _ratio(contained, handled)}
        out[str(grp or "—")] = figures
    return out


async def totals(center: ContactCenter, start: datetime, end: datetime) -> ReportRow:
    """Every figure over the whole period, computed from the rows themselves (not an
    average of the groups' averages)."""
    rows = await report(center, start, end, "all")
    return rows[0] if rows else ReportRow("all", 0, 0, 0, None, None, None, None, None, None)


def to_csv(rows: list[ReportRow], by: str) -> str:
    buffer = io.StringIO()
    fields = list(asdict(rows[0]).keys()) if rows else [f for f in ReportRow.__annotations__]
    writer = csv.DictWriter(buffer, fieldnames=[by if f == "group" else f for f in fields])
    writer.writeheader()
    for row in rows:
        data = asdict(row)
        data[by] = _csv_safe(data.pop("group"))
        writer.writerow(data)
    return buffer.getvalue()


def bars(rows: list[ReportRow], value: str, *, width: int = 560, bar: int = 28,
         gap: int = 10, label_width: int = 180, share: bool = False) -> dict[str, Any]:
    """Geometry of a horizontal bar chart (drawn as SVG by the template). A group without
    the figure (None) gets no bar and its value is shown as "—". Shares are drawn on a
    0–100 % scale, other figures against the largest value."""
    values = [getattr(r, value) for r in rows]
    top = 1.0 if share else (max((v for v in values if v is not None), default=0) or 1)
    span = width - label_width - 90
    items = [{"label": r.group, "value": v, "y": i * (bar + gap),
              "width": round(span * (v or 0) / top, 1), "x": label_width}
             for i, (r, v) in enumerate(zip(rows, values, strict=True))]
    return {"items": items, "width": width, "height": max(1, len(rows)) * (bar + gap),
            "bar": bar, "label_width": label_width}


def charts(rows: list[ReportRow]) -> list[dict[str, Any]]:
    """One chart per figure that some group has (skipping the plain answered count)."""
    out = []
    for field_name, key, kind in FIGURES:
        if field_name == "answered" or all(getattr(r, field_name) is None for r in rows):
            continue
        out.append({"id": f"{field_name.replace('_', '-')}-chart", "key": key, "kind": kind,
                    "geometry": bars(rows, field_name, share=kind == "share")})
    return out


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _round(value: Any, digits: int = 1) -> float | None:
    return None if value is None else round(float(value), digits)


def _csv_safe(text: str) -> str:
    """Spreadsheets run cells starting with = + - @ as formulas: quote them."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
