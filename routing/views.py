"""Read models the screens and the REST API show: queues, agents, tasks with their
live routing state."""

from __future__ import annotations

from typing import Any

from routing.center import ContactCenter
from routing.storage.tables import Task


def queue_views(center: ContactCenter) -> list[dict[str, Any]]:
    """Every queue with its live figures."""
    now = center.clock.now().timestamp()
    out = []
    for queue_id, queue in center.settings.queues.items():
        snap = center.router.queue_snapshot(queue_id, now)
        hours = center.hours.get(queue.spec.hours)
        out.append({
            "id": queue_id,
            "name_th": queue.spec.name.th,
            "name_en": queue.spec.name.en,
            "hours": queue.spec.hours,
            "open_now": bool(hours and hours.is_open(center.clock.now())),
            "waiting": snap.waiting,
            "waiting_by_channel": dict(snap.waiting_by_channel),
            "longest_wait_seconds": round(snap.longest_wait_seconds, 1),
            "agents_available": snap.agents_available,
            "agents_logged_in": snap.agents_logged_in,
            "service_level": snap.service_level,
            "answered": snap.answered,
            "abandoned": snap.abandoned,
        })
    return out


def task_view(center: ContactCenter, task: Task) -> dict[str, Any]:
    """A stored task with its queue position and estimated wait when it is waiting."""
    position, wait = center.queue_position(task.id)
    return {
        "id": task.id, "status": task.status, "channel": task.channel, "queue_id": task.queue_id,
        "priority": task.priority, "agent_id": task.agent_id, "reason": task.reason,
        "conversation_id": task.conversation_id, "case_id": task.case_id,
        "created_at": task.created_at, "assigned_at": task.assigned_at,
        "finished_at": task.finished_at, "wait_seconds": task.wait_seconds,
        "queue_position": position, "estimated_wait_seconds": wait,
        "wrap_code": task.wrap_code, "attributes": task.attributes,
    }
