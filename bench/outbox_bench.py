"""Outbound delivery: `send_message` through the outbox to an adapter, in process.

The core alone (no HTTP) on a fresh SQLite file, with the production settings (WAL,
`synchronous=FULL`): one email conversation, then `messages` agent replies, each stored and
delivered at once to an adapter that records it (as `send_message` does for every reply).
Baseline in the same run: the same replies stored only (`deliver_now=False`, the outbox
entry written but not delivered), so the difference is what delivery costs. A third phase
delivers the queued replies through the retry path (`retry_deliveries`, as the timer does).

Counted with SQLAlchemy engine events: statements executed and transactions committed, per
message, for each phase.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bench.common import pct
from routing import (
    Author,
    Channel,
    ContactCenter,
    IdentityHint,
    IdentityKind,
    InboundMessage,
    InProcessBus,
    OutboundMessage,
    create_database,
    load_settings,
    metadata,
)

ROOT = Path(__file__).resolve().parent.parent


class _Recorder:
    channel = Channel.EMAIL

    def __init__(self) -> None:
        self.sent = 0

    async def deliver(self, message: OutboundMessage) -> str | None:
        self.sent += 1
        return f"p-{self.sent}"


class _Counter:
    def __init__(self) -> None:
        self.statements = 0
        self.commits = 0
        self.transactions = 0

    def snapshot(self) -> tuple[int, int, int]:
        return self.statements, self.commits, self.transactions


async def run_outbox(messages: int, log: Callable[[str], None]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="onestop-bench-outbox-") as tmp:
        db = create_database(f"sqlite+aiosqlite:///{Path(tmp) / 'onestop.db'}")
        async with db.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        counter = _Counter()

        def on_statement(*_: Any) -> None:
            counter.statements += 1

        def on_commit(*_: Any) -> None:
            counter.commits += 1

        def on_begin(*_: Any) -> None:
            counter.transactions += 1

        event.listen(db.engine.sync_engine, "before_cursor_execute", on_statement)
        event.listen(db.engine.sync_engine, "commit", on_commit)
        event.listen(db.engine.sync_engine, "begin", on_begin)
        center = ContactCenter(db, load_settings(ROOT / "config"), bus=InProcessBus())
        await center.start()
        try:
            adapter = _Recorder()
            center.register_adapter(adapter)
            stored = await center.ingest(InboundMessage(
                channel=Channel.EMAIL, conversation_key="bench-thread", message_id="<b@x.th>",
                body="ขอต่ออายุบัตรประชาชนค่ะ", subject="บัตรประชาชน",
                identity_hints=(IdentityHint(IdentityKind.EMAIL, "bench@example.co.th"),)))
            await asyncio.sleep(0.5)  # the task is created in the background
            await center.stop()  # no timer: the retry phase is driven by hand below

            async def phase(deliver_now: bool) -> dict[str, Any]:
                latencies: list[float] = []
                before = counter.snapshot()
                started = time.perf_counter()
                for n in range(messages):
                    t0 = time.perf_counter()
                    await center.send_message(stored.conversation_id, f"reply {n}",
                                              author=Author.AGENT, deliver_now=deliver_now)
                    latencies.append((time.perf_counter() - t0) * 1000)
                elapsed = time.perf_counter() - started
                after = counter.snapshot()
                return {"messages_per_s": round(messages / elapsed, 1),
                        "p50_ms": round(pct(latencies, 0.5), 2),
                        "p99_ms": round(pct(latencies, 0.99), 2),
                        "statements_per_msg": round((after[0] - before[0]) / messages, 2),
                        "commits_per_msg": round((after[1] - before[1]) / messages, 2),
                        "transactions_per_msg": round((after[2] - before[2]) / messages, 2)}

            store_only = await phase(deliver_now=False)
            sent_before = adapter.sent
            before = counter.snapshot()
            started = time.perf_counter()
            await center.retry_deliveries()
            retry_elapsed = time.perf_counter() - started
            after = counter.snapshot()
            delivered_by_retry = adapter.sent - sent_before
            retry = {"delivered": delivered_by_retry,
                     "messages_per_s": round(delivered_by_retry / retry_elapsed, 1),
                     "statements_per_msg": round((after[0] - before[0])
                                                 / max(delivered_by_retry, 1), 2),
                     "commits_per_msg": round((after[1] - before[1])
                                              / max(delivered_by_retry, 1), 2),
                     "transactions_per_msg": round((after[2] - before[2])
                                                   / max(delivered_by_retry, 1), 2)}
            sent_before = adapter.sent
            send = await phase(deliver_now=True)
            send["delivered"] = adapter.sent - sent_before
        finally:
            await center.stop()
            await db.dispose()
    delivery_ms = send["p50_ms"] - store_only["p50_ms"]
    log(f"  outbox: send+deliver {send['messages_per_s']}/s p50 {send['p50_ms']} ms, "
        f"{send['statements_per_msg']} statements, {send['transactions_per_msg']} transactions "
        f"({send['commits_per_msg']} commits) per msg; "
        f"store only {store_only['messages_per_s']}/s ({store_only['statements_per_msg']} "
        f"statements, {store_only['transactions_per_msg']} transactions); "
        f"retry path {retry['messages_per_s']}/s, "
        f"{retry['statements_per_msg']} statements per msg")
    return {"messages": messages, "send_and_deliver": send, "store_only": store_only,
            "retry_path": retry, "delivery_p50_ms": round(delivery_ms, 2),
            "ratio_vs_store_only": round(send["messages_per_s"]
                                         / max(store_only["messages_per_s"], 1e-9), 3)}


if __name__ == "__main__":
    import json
    import sys

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    print(json.dumps(asyncio.run(run_outbox(count, print)), indent=1))
