"""Storm benchmark: a steady stream of successes, then 300 failures of distinct flows within
5 s while the stream goes on, routed to a `webhook` action (every event), a Slack action and a
PagerDuty action (the failures), all three loopback stand-ins with the real services' limits
(:mod:`tests.services`); its own Redis, ``flowhooks serve`` and two ``flowhooks worker``.

    make bench-storm            # or: python -m tests.bench.storm [--wait 240] [--failures 300]

Phases, printed as they go: warm-up (not measured), calm (the baseline), storm, after; then a
wait, bounded by ``--wait``, until everything is delivered: every event at the webhook, every
failure sent to Slack or carried by a Slack message (its timeline in Redis says so, or its
delivery is marked delivered), an incident opened at PagerDuty for every failed flow.

Printed: the webhook's received-to-delivered p50/p99 (the stand-in's arrival time minus the
receiver's ``received_at``; one machine, one clock) for the events received in the calm phase
and for those received in the storm window (from the storm's start, when its first failure is
posted, until :data:`STORM_TAIL` seconds after the receiver received its last failure), with
the target (storm p99 at most 2 x calm p99 + 50 ms); the Slack messages accepted from the
storm's start on (target: at most 10) and the 429s Slack answered; PagerDuty's triggers,
incidents opened, most incidents of one dedup key and 429s; how long delivering everything
took. Exits 1, saying what is missing, when not everything is delivered within ``--wait``
seconds.
"""

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis import Redis

from config import keys
from config.connections import connect
from tests.bench.loadgen import Pool, Posted, acknowledged, http_request, paced
from tests.bench.system import commands, percentile, processes, wait_ready
from tests.e2e.delivery_support import webhook
from tests.services import PAGERDUTY_PATH, SLACK_PATH, WEBHOOK_PATH, Services
from tests.support import ENV, RedisProcess, free_port, settings
from workers.delivery import delivery_id, received_at

SOURCE = "etl"
ROUTING_KEY = "storm-routing-key-R7vX2kQ9"
CONFIG = """
sources:
  etl:
    verify:
      - hmac: {secrets: ["${SECRET}"]}
actions:
  hook: {webhook: {url: "${STORM_WEBHOOK_URL}"}}
  slack: {slack: {webhook_url: "${STORM_SLACK_URL}"}}
  pager: {pagerduty: {routing_key: "${STORM_ROUTING_KEY}", url: "PAGERDUTY_URL"}}
routes:
  actions: []
  routes:
    - actions: [hook]
      continue: true
    - matchers: ['kind="flow.failed"']
      actions: [slack, pager]
      resolve: true
"""
CONNECTIONS = 32
STEADY_FLOWS = 1000
"""The steady stream's flows are 1000, 1001, …; the storm's failed flows 5000, 5001, …"""
STORM_FLOWS = 5000
STORM_TAIL = 5.0
"""Seconds the storm window runs on after the receiver received the storm's last failure."""
SLACK_TARGET = 10
PROGRESS_EVERY = 15.0


@dataclass(frozen=True)
class Plan:
    rate: float
    flows: int
    warmup: float
    calm: float
    failures: int
    storm: float
    after: float
    wait: float
    workers: int

    @property
    def steady_seconds(self) -> float:
        return self.warmup + self.calm + self.storm + self.after


@dataclass
class Run:
    """What was posted, and when (Unix times) each phase began."""

    posted: dict[str, Posted] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    calm_at: float = 0.0
    storm_at: float = 0.0
    after_at: float = 0.0
    stopped_at: float = 0.0


async def post(port: int, plan: Plan) -> Run:
    """The steady stream for the whole run and, from the calm phase's end, the storm's
    failures, each event sent until acknowledged (as Etlworks retries); phases printed."""
    pool = Pool(port, CONNECTIONS)
    run = Run()
    base, wall = time.perf_counter(), time.time()
    run.calm_at = wall + plan.warmup
    run.storm_at = run.calm_at + plan.calm
    run.after_at = run.storm_at + plan.storm

    async def send(event: str, event_id: str, flow_id: int) -> Posted:
        body, headers = webhook(event, event_id, flow_id=flow_id)
        request = http_request(port, f"/webhooks/{SOURCE}", body, headers)
        run.posted[event_id] = posted = await acknowledged(
            pool, request, every=1.0, give_up_after=60
        )
        return posted

    async def steady(i: int) -> Posted:
        return await send("FLOW_SUCCESS", f"steady-{i}", STEADY_FLOWS + i % plan.flows)

    async def failure(i: int) -> Posted:
        run.failures.append(f"storm-{i}")
        return await send("FLOW_FAILED", f"storm-{i}", STORM_FLOWS + i)

    async def storm() -> None:
        await asyncio.sleep(base + plan.warmup + plan.calm - time.perf_counter())
        await paced(plan.failures / plan.storm, plan.failures, failure)

    async def phases() -> None:
        say(f"warm-up: {plan.rate:g} successes/s of {plan.flows} flows for {plan.warmup:g} s")
        for offset, text in (
            (plan.warmup, f"calm: the same for {plan.calm:g} s (the baseline)"),
            (
                plan.warmup + plan.calm,
                f"storm: {plan.failures} failures of {plan.failures} flows within "
                f"{plan.storm:g} s, the steady {plan.rate:g}/s going on",
            ),
            (plan.warmup + plan.calm + plan.storm, f"after: the steady stream {plan.after:g} s"),
        ):
            await asyncio.sleep(base + offset - time.perf_counter())
            say(text)

    steady_count = round(plan.rate * plan.steady_seconds)
    await asyncio.gather(paced(plan.rate, steady_count, steady), storm(), phases())
    pool.close()
    run.stopped_at = time.time()
    return run


def say(text: str) -> None:
    print(text, flush=True)


# Waiting until everything is delivered ------------------------------------------------------


@dataclass
class Progress:
    """What has arrived so far."""

    run: Run
    services: Services
    redis: Redis
    arrived: dict[str, float] = field(default_factory=dict)
    """Event id: when its notification first reached the webhook (answered 200)."""
    slack_done: dict[str, str] = field(default_factory=dict)
    """Failure event id: ``sent`` (a Slack message of its own) or ``carried`` (by another)."""
    incidents: dict[str, float] = field(default_factory=dict)
    """Dedup key: when its first incident was opened."""

    def update(self) -> None:
        self.services.fetch()
        for arrival in self.services.webhook:
            if arrival.status == 200 and arrival.event_id is not None:
                self.arrived.setdefault(arrival.event_id, arrival.at)
        for event in self.services.pagerduty:
            if event.opened:
                self.incidents.setdefault(event.dedup_key, event.at)
        pending = [e for e in self.failures if e not in self.slack_done]
        self.slack_done.update(slack_outcomes(self.redis, pending))

    @property
    def acknowledged(self) -> list[str]:
        return [e for e, p in self.run.posted.items() if p.acknowledged]

    @property
    def failures(self) -> list[str]:
        """The storm's failures the receiver acknowledged."""
        return [e for e in self.run.failures if self.run.posted[e].acknowledged]

    def missing(self) -> dict[str, list[str]]:
        """What has not arrived yet: event ids (webhook, slack), dedup keys (pagerduty)."""
        return {
            "webhook": [e for e in self.acknowledged if e not in self.arrived],
            "slack": [e for e in self.failures if e not in self.slack_done],
            "pagerduty": [k for k in map(dedup_key, self.failures) if k not in self.incidents],
        }


def dedup_key(failure: str) -> str:
    """The PagerDuty dedup key of a storm failure's flow (the default template's)."""
    return f"flowhooks:{SOURCE}:{STORM_FLOWS + int(failure.removeprefix('storm-'))}"


def slack_outcomes(redis: Redis, event_ids: Sequence[str]) -> dict[str, str]:
    """Of the failures ``event_ids``, those whose Slack notification is done: ``sent`` when
    their timeline has an entry of its delivery, delivered; ``carried`` when another message
    carried it (a digest: the delivery is marked delivered, and the timeline names the
    digest). Timelines and marks are read in one transaction, so that a delivery recorded
    between two reads is not taken for a carried one."""
    refs = [keys.ref(SOURCE, e) for e in event_ids]
    planned = [
        _slack_delivery(ref, t) for ref, t in zip(refs, _timelines(redis, refs), strict=True)
    ]
    known = [(e, r, d) for e, r, d in zip(event_ids, refs, planned, strict=True) if d is not None]
    with redis.pipeline(transaction=True) as pipe:
        for _, ref, delivery in known:
            pipe.lrange(keys.timeline(ref), 0, -1)
            pipe.exists(keys.delivered(delivery))
        replies = pipe.execute()
    done: dict[str, str] = {}
    for (event_id, _, delivery), timeline, mark in zip(
        known, replies[::2], replies[1::2], strict=True
    ):
        own = any(
            entry.get("delivery_id") == delivery and entry.get("outcome") == "delivered"
            for entry in map(json.loads, timeline)
        )
        if own:
            done[event_id] = "sent"
        elif mark:
            done[event_id] = "carried"
    return done


def _timelines(redis: Redis, refs: Sequence[str]) -> list[list[dict[str, Any]]]:
    with redis.pipeline(transaction=False) as pipe:
        for ref in refs:
            pipe.lrange(keys.timeline(ref), 0, -1)
        return [[json.loads(entry) for entry in t] for t in pipe.execute()]


def _slack_delivery(ref: str, timeline: Iterable[dict[str, Any]]) -> str | None:
    """The id of the event's Slack notification, from the routes its timeline says it took."""
    for entry in timeline:
        if entry.get("stage") == "routed":
            for planned in entry.get("deliveries", []):
                if planned.get("action") == "slack" and planned.get("kind") == "notify":
                    return delivery_id(ref, planned["route"], "slack", "notify")
    return None


def wait_delivered(progress: Progress, wait: float) -> bool:
    """Whether everything arrived within ``wait`` seconds; progress printed as it goes."""
    deadline = time.monotonic() + wait
    next_say = time.monotonic() + PROGRESS_EVERY
    while True:
        progress.update()
        missing = progress.missing()
        if not any(missing.values()):
            return True
        if time.monotonic() > deadline:
            return False
        if time.monotonic() >= next_say:
            next_say += PROGRESS_EVERY
            total = len(progress.failures)
            say(
                f"  still waiting: webhook {len(progress.arrived)}/{len(progress.acknowledged)},"
                f" slack {total - len(missing['slack'])}/{total} failures,"
                f" pagerduty {total - len(missing['pagerduty'])}/{total} incidents"
            )
        time.sleep(1.0)


# Figures ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """Events the receiver received from ``low`` to ``high`` (Unix times)."""

    low: float
    high: float

    def latencies(
        self, progress: Progress, received: dict[str, float], prefix: str = ""
    ) -> list[float]:
        """Received-to-delivered seconds of the delivered ones (whose id starts ``prefix``)."""
        return [
            progress.arrived[e] - at
            for e, at in received.items()
            if self.low <= at <= self.high and e in progress.arrived and e.startswith(prefix)
        ]

    def undelivered(self, progress: Progress, received: dict[str, float]) -> int:
        return sum(
            1
            for e, at in received.items()
            if self.low <= at <= self.high and e not in progress.arrived
        )


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds >= 1 else f"{seconds * 1000:.1f} ms"


def quantiles(values: Sequence[float]) -> str:
    return f"p50 {ms(percentile(values, 0.5))}, p99 {ms(percentile(values, 0.99))}"


def verdict(met: bool) -> str:
    return "met" if met else "NOT MET"


def report(progress: Progress, plan: Plan, received: dict[str, float], complete: bool) -> None:
    run = progress.run
    last_failure = max((received[e] for e in progress.failures if e in received), default=None)
    storm = Window(run.storm_at, (last_failure or run.after_at) + STORM_TAIL)
    say("")
    report_webhook(progress, received, Window(run.calm_at, run.storm_at), storm)
    report_slack(progress, storm)
    report_pagerduty(progress)
    if complete:
        done = _done_at(progress)
        say(
            f"everything delivered {done - run.storm_at:.1f} s after the storm began "
            f"({done - run.stopped_at:.1f} s after posting stopped)"
        )
        return
    missing = progress.missing()
    say(
        f"NOT EVERYTHING DELIVERED within {plan.wait:g} s of posting stopped: "
        f"{len(missing['webhook'])} webhook notifications, {len(missing['slack'])} Slack "
        f"notifications of failures, {len(missing['pagerduty'])} PagerDuty incidents missing"
    )
    for name, items in missing.items():
        if items:
            say(f"  {name}: {', '.join(items[:5])}{' …' if len(items) > 5 else ''}")


def report_webhook(
    progress: Progress, received: dict[str, float], calm: Window, storm: Window
) -> None:
    baseline = calm.latencies(progress, received)
    during = storm.latencies(progress, received)
    late = storm.undelivered(progress, received)
    say(
        f"webhook, calm (events received in the calm phase, {calm.high - calm.low:.1f} s, "
        f"{len(baseline)} events): received-to-delivered {quantiles(baseline)}"
    )
    say(
        f"webhook, storm (events received from the storm's start until {STORM_TAIL:g} s after "
        f"the receiver received its last failure, {storm.high - storm.low:.1f} s, {len(during)} "
        f"events): {quantiles(during)}" + (f"; {late} more never delivered" if late else "")
    )
    steady = storm.latencies(progress, received, prefix="steady-")
    say(f"  of which the steady stream's successes ({len(steady)}): {quantiles(steady)}")
    target = 2 * percentile(baseline, 0.99) + 0.05
    met = percentile(during, 0.99) <= target and not late
    say(f"  target: storm p99 <= 2 x calm p99 + 50 ms = {ms(target)}: {verdict(met)}")


def report_slack(progress: Progress, storm: Window) -> None:
    slack = progress.services.slack
    accepted = [m for m in slack if m.status == 200 and m.at >= storm.low]
    during = sum(1 for m in accepted if m.at <= storm.high)
    how = Counter(progress.slack_done.values())
    say(
        f"slack: {len(accepted)} messages accepted from the storm's start on ({during} in the "
        f"storm window, {len(accepted) - during} after), "
        f"{sum(1 for m in slack if m.status == 429)} requests answered 429; failures sent in a "
        f"message of their own {how['sent']}, carried by another message {how['carried']}"
    )
    met = len(accepted) <= SLACK_TARGET
    say(f"  target: at most {SLACK_TARGET} messages: {verdict(met)}")


def report_pagerduty(progress: Progress) -> None:
    events = progress.services.pagerduty
    triggers = sum(1 for e in events if e.status == 202 and e.action == "trigger")
    opened = Counter(e.dedup_key for e in events if e.opened)
    say(
        f"pagerduty: {triggers} triggers accepted, {sum(opened.values())} incidents opened "
        f"({len(opened)} dedup keys, at most {max(opened.values(), default=0)} per key), "
        f"{sum(1 for e in events if e.status == 429)} requests answered 429"
    )


def _done_at(progress: Progress) -> float:
    """When the last of what had to arrive arrived."""
    webhook = [progress.arrived[e] for e in progress.acknowledged if e in progress.arrived]
    slack = [m.at for m in progress.services.slack if m.status == 200]
    incidents = [progress.incidents.get(dedup_key(e), 0.0) for e in progress.failures]
    return max([*webhook, *slack, *incidents], default=float("nan"))


def received_times(redis: Redis, event_ids: Iterable[str]) -> dict[str, float]:
    """The receiver's ``received_at`` of each stored event of ``event_ids``."""
    ids = list(event_ids)
    records = redis.mget([keys.event(keys.ref(SOURCE, e)) for e in ids]) if ids else []
    found = {}
    for event_id, record in zip(ids, records, strict=True):
        at = received_at(json.loads(record)) if record is not None else None
        if at is not None:
            found[event_id] = at
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=20.0, help="steady events a second")
    parser.add_argument("--flows", type=int, default=20, help="flows of the steady stream")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds, not measured")
    parser.add_argument("--calm", type=float, default=20.0, help="seconds of the baseline")
    parser.add_argument("--failures", type=int, default=300, help="failures of distinct flows")
    parser.add_argument("--storm", type=float, default=5.0, help="seconds they are posted in")
    parser.add_argument("--after", type=float, default=20.0, help="seconds of steady stream")
    parser.add_argument(
        "--wait", type=float, default=240.0, help="seconds to wait for deliveries at most"
    )
    parser.add_argument("--workers", type=int, default=2)
    plan = Plan(**vars(parser.parse_args()))

    redis = RedisProcess()
    redis.start()
    workdir = Path(tempfile.mkdtemp(prefix="flowhooks-storm-"))
    complete = False
    try:
        with Services(ROUTING_KEY) as services:
            config = workdir / "flowhooks.yaml"
            config.write_text(CONFIG.replace("PAGERDUTY_URL", services.url(PAGERDUTY_PATH)))
            port = free_port()
            env = {
                **os.environ,
                **ENV,
                "STORM_WEBHOOK_URL": services.url(WEBHOOK_PATH),
                "STORM_SLACK_URL": services.url(SLACK_PATH),
                "STORM_ROUTING_KEY": ROUTING_KEY,
                "FLOWHOOKS_REDIS_URL": redis.url,
                "FLOWHOOKS_CONFIG": str(config),
                "FLOWHOOKS_LOG_LEVEL": "WARNING",
            }
            with processes(commands(port, plan.workers), env, logs=workdir):
                wait_ready(port)
                run = asyncio.run(post(port, plan))
                refused = Counter(p.status for p in run.posted.values() if not p.acknowledged)
                say(
                    f"posting stopped: {len(run.posted)} events posted, "
                    f"{len(run.posted) - sum(refused.values())} acknowledged"
                    + (f", not acknowledged: {dict(refused)}" if refused else "")
                )
                say(f"waiting until everything is delivered, {plan.wait:g} s at most")
                conn = connect(settings(redis.url), decode_responses=True)
                progress = Progress(run, services, conn)
                complete = wait_delivered(progress, plan.wait)
                report(progress, plan, received_times(conn, run.posted), complete)
    finally:
        redis.cleanup()
    if not complete:
        say(f"the processes' logs: {workdir}")
        sys.exit(1)
    shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
