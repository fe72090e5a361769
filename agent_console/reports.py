"""Reports over a period, computed in SQL (read only): volume, service level, ASA, AHT,
abandonment, one-stop resolution and satisfaction, by queue, channel, agent or category.

A task is counted in the period it was created in. Service level = answered within the
channel's threshold ÷ (answered + abandoned after the threshold), as on the live wall.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Float, and_, case, cast, func, literal, or_, select

from routing import AgentRecord, Case, ContactCenter, Task, TaskStatus

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


def period(start: date, end: date) -> tuple[datetime, datetime]:
    """Whole days in Bangkok time, `end` included, as UTC-aware datetimes."""
    return (datetime.combine(start, time(), BANGKOK),
            datetime.combine(end + timedelta(days=1), time(), BANGKOK))


async def report(center: ContactCenter, start: datetime, end: datetime,
                 by: str) -> list[ReportRow]:
    """One row per group with every figure, for tasks created in [start, end)."""
    if by not in DIMENSIONS:
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
        .group_by(group)
        .order_by(group)
    )
    async with center.db.sessions() as s:
        rows = (await s.execute(query)).all()
    out = []
    for grp, volume, ans, aban, within, late_aban, asa, aht, os_yes, os_all, csat in rows:
        ans, aban = int(ans or 0), int(aban or 0)
        denominator = ans + int(late_aban or 0)
        out.append(ReportRow(
            group=str(grp or "—"), volume=int(volume), answered=ans, abandoned=aban,
            service_level=_ratio(int(within or 0), denominator),
            asa_seconds=_round(asa), aht_seconds=_round(aht),
            abandonment=_ratio(aban, int(volume)),
            one_stop=_ratio(int(os_yes or 0), int(os_all or 0)),
            csat=_round(csat, 2)))
    return out


def totals(rows: list[ReportRow]) -> dict[str, Any]:
    """Figures over every group (volume-weighted where averages are concerned)."""
    volume = sum(r.volume for r in rows)
    answered = sum(r.answered for r in rows)
    return {"volume": volume, "answered": answered,
            "abandoned": sum(r.abandoned for r in rows),
            "abandonment": _ratio(sum(r.abandoned for r in rows), volume)}


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
         gap: int = 10, label_width: int = 180) -> dict[str, Any]:
    """Geometry of a horizontal bar chart (drawn as SVG by the template)."""
    values = [getattr(r, value) or 0 for r in rows]
    top = max(values, default=0) or 1
    span = width - label_width - 70
    items = [{"label": r.group, "value": v, "y": i * (bar + gap),
              "width": round(span * v / top, 1), "x": label_width}
             for i, (r, v) in enumerate(zip(rows, values, strict=True))]
    return {"items": items, "width": width, "height": max(1, len(rows)) * (bar + gap),
            "bar": bar, "label_width": label_width}


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _round(value: Any, digits: int = 1) -> float | None:
    return None if value is None else round(float(value), digits)


def _csv_safe(text: str) -> str:
    """Spreadsheets run cells starting with = + - @ as formulas: quote them."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
