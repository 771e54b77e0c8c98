"""The drainer: a thread of every worker that sends what waits in the lanes
(:mod:`workers.lanes`), at each destination's pace, while the worker's jobs go on.

Every :data:`SCAN_EVERY` seconds it looks for lanes with a delivery due (:data:`config.keys.LANES`)
and takes the lease of each one nobody drains (:func:`workers.lanes.lease`); it renews its
leases every :data:`RENEW_EVERY` seconds, so the lanes of a worker that died (SIGKILL, the
machine gone) are drained by another within :data:`LEASE_TTL` seconds. One lane is drained in
order, one send at a time; lanes are drained side by side, on one event loop.

An entry leaves its lane only once dealt with (delivered, carried by a digest, skipped, or
dead-lettered): a drainer that dies mid-send leaves it at the head, and the next drainer sends
it again unless its delivered mark says it went (at least once, as a re-run job).

A storm (more than the action's ``collapse.after`` notifications waiting at the head of a lane
of a collapsing action) goes out as one digest (:mod:`workers.storms`); each event's timeline
says which digest carried it. A pause the drainer would wait longer than :data:`HOLD` seconds
for (``Retry-After``, an open circuit's cool-down) parks the lane until then and frees the
lease.
"""

import asyncio
import hashlib
import json
import logging
import threading
import time
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import httpx
from redis.exceptions import RedisError

from config import eventlog, keys
from workers import lanes, storms
from workers.delivery import (
    FAILURE_KINDS,
    Deliverer,
    Outcome,
    Spec,
    note_notified,
    received_at,
)

if TYPE_CHECKING:
    from redis import Redis

    from workers.context import WorkerContext

log = logging.getLogger("flowhooks.worker")

SCAN_EVERY = 0.25
"""Seconds between two looks for lanes due."""
LEASE_TTL = 10.0
"""Seconds a lane's lease outlives its holder's last renewal."""
RENEW_EVERY = 3.0
HOLD = 2.0
"""A pause up to this long is waited out holding the lane; a longer one parks it."""
BATCH = 1000
"""Entries one storm digest carries at most (the rest follow in the next)."""
COLLAPSING = frozenset({"notify", "resolve"})
"""The deliveries a storm digest carries: an event's own notification or recovery."""


class Drainer:
    """The drainer thread of worker ``name``, on a Redis client of its own; deliveries are
    made with what ``context`` holds (the config, reloaded as the worker's, the metrics)."""

    def __init__(self, conn: "Redis", name: str, context: "WorkerContext") -> None:
        self.conn = conn
        self.holder = name
        self.context = context
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="drainer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop draining: a send in flight finishes (or is cut at :data:`LEASE_TTL`), the
        leases are given up."""
        self._stop.set()
        self._thread.join(LEASE_TTL)

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        # redirects are never followed (a sink's URL is a secret it must not forward)
        client = httpx.AsyncClient(follow_redirects=False, timeout=30.0)
        draining: dict[str, asyncio.Task[None]] = {}
        renewed = time.monotonic()
        try:
            while not self._stop.is_set():
                try:
                    if time.monotonic() - renewed >= RENEW_EVERY:
                        renewed = time.monotonic()
                        for action in [a for a, t in draining.items() if not t.done()]:
                            if not lanes.renew(self.conn, action, self.holder, LEASE_TTL):
                                draining.pop(action).cancel()
                    for action in lanes.due(self.conn, time.time()):
                        if action not in draining and lanes.lease(
                            self.conn, action, self.holder, LEASE_TTL
                        ):
                            draining[action] = asyncio.create_task(self._drain(action, client))
                except RedisError as exc:
                    log.debug("lane scan failed", extra={"reason": type(exc).__name__})
                for action in [a for a, t in draining.items() if t.done()]:
                    draining.pop(action)
                await asyncio.sleep(SCAN_EVERY)
        finally:
            for task in draining.values():
                task.cancel()
            await asyncio.gather(*draining.values(), return_exceptions=True)
            await client.aclose()

    async def _drain(self, action: str, client: httpx.AsyncClient) -> None:
        """Drain one lane while it has something due, holding its lease."""
        try:
            while not self._stop.is_set() and await self.step(action, client):
                pass
        except RedisError as exc:
            log.warning("draining a lane failed", extra={"action": action, "reason": str(exc)})
        except Exception:
            log.exception("draining a lane failed", extra={"action": action})
            with suppress(RedisError):
                lanes.park(self.conn, action, time.time() + 5)
        finally:
            with suppress(RedisError):
                lanes.release(self.conn, action, self.holder)

    async def step(self, action: str, client: httpx.AsyncClient) -> bool:
        """Send the next delivery (or storm digest) of the lane; whether to go on."""
        conn = self.conn
        entries = lanes.head(conn, action, BATCH)
        if not entries:
            return lanes.park(conn, action, time.time())
        state = lanes.state(conn, action)
        now = time.time()
        if state.paused_until > now:
            if state.paused_until - now > HOLD:
                lanes.park(conn, action, state.paused_until)
                return False
            await asyncio.sleep(state.paused_until - now)
            return True
        probe = state.circuit != "closed"
        if state.circuit == "open":  # the cool-down is over: the head alone tests it
            lanes.half_open(conn, action)
            log.info("circuit half open: probing", extra={"action": action})
        deliverer = self._deliverer()
        config = deliverer.config.actions.get(action)
        read, first = entries[0]
        batch = [] if probe or config is None else self._batch(action, entries, config)
        if config is not None:
            wait = lanes.pace(conn, action, config.sink, time.time())
            if wait > 0:
                await asyncio.sleep(wait)
        if len(batch) > 1:
            outcome = await self._digest(deliverer, action, batch, client)
            taken = len(batch)
        else:
            spec = Spec.from_json(first.spec)
            outcome = await deliverer.attempt(spec, client, drained=True)
            taken = 1
            if outcome.result == "delivered":
                note_notified(conn, deliverer.config, spec)
        if outcome.result == "retry":
            if outcome.retry is not None and taken == 1:
                again = lanes.Entry(outcome.retry.to_json(), first.queued_at, first.flow)
                lanes.replace_head(conn, action, read, again)
            return True
        lanes.pop(conn, action, taken, read)
        return True

    def _deliverer(self) -> Deliverer:
        ctx = self.context
        return Deliverer(
            self.conn,
            ctx.config,
            ctx.metrics,
            dedup_ttl=ctx.settings.dedup_ttl,
            retention=ctx.settings.event_retention,
            job_timeout=ctx.settings.job_timeout,
        )

    def _batch(
        self, action: str, entries: list[tuple[str, lanes.Entry]], config: Any
    ) -> list[lanes.Entry]:
        """The entries the next digest carries: the notifications leading the lane, when more
        than ``collapse.after`` of them wait (or as many as the digest a drainer that died
        was sending carried); else none."""
        after = config.collapse_after
        if after is None:
            return []
        run: list[lanes.Entry] = []
        for _, entry in entries:
            if entry.spec.get("kind") not in COLLAPSING or entry.spec.get("refs"):
                break
            run.append(entry)
        begun = self.conn.get(keys.lane_batch(action))
        if begun is not None:
            return run[: int(keys.text(begun))]
        if len(run) <= after:
            return []
        self.conn.set(keys.lane_batch(action), len(run), ex=86400)
        return run

    async def _digest(
        self,
        deliverer: Deliverer,
        action: str,
        batch: list[lanes.Entry],
        client: httpx.AsyncClient,
    ) -> Outcome:
        """Send the entries of ``batch`` as one storm digest; once it is delivered, each
        carried delivery is marked delivered, with a timeline entry naming the digest."""
        conn = self.conn
        specs = [Spec.from_json(e.spec) for e in batch]
        with conn.pipeline(transaction=False) as pipe:
            for spec in specs:
                pipe.exists(keys.delivered(spec.delivery_id))
                pipe.get(keys.event(spec.ref))
            replies = pipe.execute()
        todo: list[tuple[Spec, dict[str, Any]]] = []
        for spec, done, raw in zip(specs, replies[::2], replies[1::2], strict=True):
            if not done and raw is not None:
                todo.append((spec, json.loads(raw)))
        if not todo:
            return Outcome(specs[0], "skipped", "every delivery of the digest was made")
        failed: dict[str, str] = {}
        since: list[float] = []
        for spec, event in todo:
            if spec.kind == "notify" and event.get("kind") in FAILURE_KINDS:
                flow = keys.ref(str(event.get("source")), str(event.get("flow_id") or event["id"]))
                failed.setdefault(flow, str(event.get("flow_name") or event.get("flow_id") or ""))
                if (at := received_at(event)) is not None:
                    since.append(at)
        title = storms.title(failed, min(since, default=None), len(todo) - len(failed))
        ids = "\x00".join(s.delivery_id for s, _ in todo)
        routes = ", ".join(dict.fromkeys(s.route for s, _ in todo))
        digest = Spec(
            todo[-1][0].ref,
            routes,
            action,
            "digest",
            "l" + hashlib.sha1(ids.encode(), usedforsecurity=False).hexdigest(),
            first_at=min(s.first_at or time.time() for s, _ in todo),
            refs=tuple(s.ref for s, _ in todo),
            title=title,
        )
        deliverer.events.update({s.ref: e for s, e in todo})
        outcome = await deliverer.attempt(digest, client, drained=True)
        if outcome.result not in ("delivered", "skipped"):
            return outcome
        storms.record(conn, action, failed, time.time())
        with conn.pipeline(transaction=False) as pipe:
            for spec, _ in todo:
                pipe.set(keys.delivered(spec.delivery_id), "1", ex=int(deliverer.dedup_ttl))
                eventlog.append(
                    pipe,
                    spec.ref,
                    "delivery",
                    route=spec.route,
                    action=spec.action,
                    kind=spec.kind,
                    delivery_id=spec.delivery_id,
                    outcome="carried",
                    digest=digest.delivery_id,
                )
            pipe.execute()
        for spec, event in todo:
            note_notified(conn, deliverer.config, spec, event)
        metrics = self.context.metrics
        metrics.digests.labels(action).inc()
        metrics.digest_deliveries.labels(action).inc(len(todo))
        log.info(
            "storm digest sent",
            extra={"action": action, "carried": len(todo), "delivery_id": digest.delivery_id},
        )
        return Outcome(digest, "delivered")
