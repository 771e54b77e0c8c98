"""The chaos test's parts: flowhooks as real processes against a durable Redis (AOF,
``appendfsync always``), each of which the test stops and starts again; the service stand-ins
(:mod:`tests.services`); signed events posted steadily by the in-repo load generator in a thread
of its own, each retried until acknowledged as Etlworks does; a schedule of what to break when,
written down as it happens; and the verdict on what arrived.

Times in what is printed are seconds since posting began.
"""

import asyncio
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis, RedisError

from config import keys
from config.connections import connect
from tests.bench.loadgen import Pool, Posted, acknowledged, http_request, paced
from tests.e2e.delivery_support import WorkerProcess, webhook
from tests.services import (
    PAGERDUTY_PATH,
    WEBHOOK_PATH,
    Arrival,
    PagerDutyEvent,
    Services,
)
from tests.support import ENV, FLOWHOOKS, RedisProcess, child_env, free_port, settings, wait_until

SOURCE = "etl"
ROUTING_KEY = "chaos-routing-key-T4nB8wLq"
CONFIG = """
sources:
  etl:
    verify:
      - hmac: {secrets: ["${SECRET}"]}
actions:
  hook:
    webhook: {url: "${CHAOS_WEBHOOK_URL}"}
    retry: {initial: 1s, max_interval: 4s}
  pager:
    pagerduty: {routing_key: "${CHAOS_ROUTING_KEY}", url: "PAGERDUTY_URL"}
    retry: {initial: 1s, max_interval: 5s}
routes:
  actions: []
  routes:
    - actions: [hook]
      continue: true
      repeat_interval: 0s
    - matchers: ['kind="flow.failed"']
      actions: [pager]
      resolve: true
"""
"""Every event to the webhook (a repeat interval would hold back a flow's second failure in a
row there too); failures to PagerDuty, resolved by the flow's next success."""
DUPLICATE_WINDOW = 2.0
"""A second copy of a notification is within the documented window when a worker was
SIGKILLed at most this many seconds after the first copy arrived (it died after sending and
before recording the delivery), or half a second before (the request was on its way)."""
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "chaos"
"""Where the processes' logs of a failed run are kept."""
TAIL = 8
"""Log records of a process quoted when something went wrong."""
LOG_RECORD = re.compile(r"\d\d:\d\d:\d\d [A-Z]+ ")
"""The start of a line of the text log format: a record, not a line of a traceback."""


# The processes ------------------------------------------------------------------------------


class ReceiverProcess:
    """``flowhooks serve`` on one loopback port, for as many lives as the test gives it."""

    def __init__(self, env: Mapping[str, str], log: Path) -> None:
        self.env, self.log, self.port = dict(env), log, free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.exits: list[int] = []

    def launch(self) -> None:
        """Start it; senders meanwhile find the port closed, as during a rollout."""
        argv = [*FLOWHOOKS, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                argv, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def start(self) -> None:
        """Start it and wait until it listens."""
        self.launch()
        if not wait_until(self._listening, 30, interval=0.1):
            raise AssertionError(f"the receiver did not start:\n{tail(self.log)}")

    def _listening(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Signal it and wait for it to exit (SIGKILL after 20 s)."""
        if self.process is None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.exits.append(self.process.returncode)
        self.process = None


class Launched(WorkerProcess):
    """A worker started without waiting for it to register in Redis, which may be down."""

    def launch(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [*FLOWHOOKS, "worker", "--name", self.name],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )


@dataclass
class Life:
    """One worker process in a slot, and how it ended (Unix times)."""

    worker: Launched
    started_at: float
    killed_at: float | None = None
    exited_at: float | None = None
    """When the test noticed that it had exited by itself."""

    @property
    def code(self) -> int | None:
        process = self.worker.process
        return None if process is None else process.poll()


class Crew:
    """Workers in ``size`` slots. A SIGKILLed worker's slot gets a new worker (a new name:
    RQ refuses a name still registered); one that exits by itself stays dead, noted."""

    def __init__(self, size: int, env: Mapping[str, str], folder: Path, clock: "Clock") -> None:
        self.env, self.folder, self.clock = dict(env), folder, clock
        self.lives: list[list[Life]] = [[] for _ in range(size)]

    def start(self, slot: int) -> None:
        name = f"chaos-{slot + 1}-{len(self.lives[slot]) + 1}"
        worker = Launched(self.env, self.folder / f"{name}.log", name)
        worker.launch()
        self.lives[slot].append(Life(worker, time.time()))

    def kill(self, slot: int) -> bool:
        """SIGKILL the slot's worker and everything of its process group; ``False`` when it
        was not running."""
        life = self.lives[slot][-1]
        if not life.worker.alive:
            return False
        life.killed_at = time.time()
        life.worker.kill()
        return True

    def notice_exits(self) -> None:
        for lives in self.lives:
            life = lives[-1]
            if life.killed_at is None and life.exited_at is None and not life.worker.alive:
                life.exited_at = time.time()

    @property
    def kills(self) -> list[float]:
        """When workers were SIGKILLed, in test seconds."""
        found = [life.killed_at for lives in self.lives for life in lives if life.killed_at]
        return sorted(self.clock.of(at) for at in found)

    def stop_all(self) -> None:
        for lives in self.lives:
            for life in lives:
                life.worker.kill()

    def describe(self) -> list[str]:
        of = self.clock.of
        lines = []
        for lives in self.lives:
            for life in lives:
                how = "running"
                if life.killed_at is not None:
                    how = f"SIGKILLed at {of(life.killed_at):.1f} s"
                elif life.exited_at is not None:
                    noticed = of(life.exited_at)
                    how = f"EXITED BY ITSELF with code {life.code}, noticed at {noticed:.1f} s"
                started = of(life.started_at)
                lines.append(f"  {life.worker.name} (started at {started:.1f} s): {how}")
        return lines

    def self_exited(self) -> list[Life]:
        return [life for lives in self.lives for life in lives if life.exited_at is not None]


def tail(log: Path, lines: int = TAIL) -> str:
    """The last ``lines`` log records of a process's log (text format), without the frames
    of tracebacks (the whole log stays in the test's folder)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log)"
    records = [line for line in text.splitlines() if LOG_RECORD.match(line)]
    return "\n".join(records[-lines:])


# Time, the schedule and the record of what happened -----------------------------------------


@dataclass
class Clock:
    """Seconds since posting began (a Unix time is turned into the same)."""

    zero: float = field(default_factory=time.time)

    def restart(self) -> None:
        self.zero = time.time()

    def now(self) -> float:
        return time.time() - self.zero

    def of(self, unix: float) -> float:
        return unix - self.zero

    def sleep_until(self, at: float) -> None:
        time.sleep(max(0.0, at - self.now()))


@dataclass(frozen=True)
class Step:
    at: float
    what: str
    do: Callable[[], object]


@dataclass
class Record:
    """What the test did, when."""

    clock: Clock
    lines: list[str] = field(default_factory=list)
    redis_stops: list[float] = field(default_factory=list)
    """In test seconds."""

    def note(self, what: str, at: float | None = None) -> None:
        """Write down ``what`` happened at ``at`` (a Unix time; now if not given)."""
        when = self.clock.now() if at is None else self.clock.of(at)
        self.lines.append(f"{when:6.1f} s  {what}")


def run_schedule(steps: Iterable[Step], clock: Clock, record: Record, crew: Crew) -> None:
    """Take each step at its time (or as soon as the one before is done); between steps,
    notice workers that exited by themselves."""
    for step in sorted(steps, key=lambda s: s.at):
        while clock.now() < step.at:
            crew.notice_exits()
            clock.sleep_until(min(step.at, clock.now() + 0.5))
        started = time.time()
        result = step.do()
        took = time.time() - started
        what = step.what + (" (nothing to do)" if result is False else "")
        record.note(what + (f" (took {took:.1f} s)" if took >= 1 else ""), at=started)
        crew.notice_exits()


# Traffic ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    event_id: str
    flow_id: int
    failed: bool
    posted: Posted


class Traffic:
    """Signed events posted by the in-repo load generator in a thread of its own: ``rate`` a
    second for ``seconds``, for ``flows`` flows in turn, each flow failing twice in a row
    every :attr:`CYCLE` of its events and succeeding otherwise; each event sent again (the
    same bytes) until acknowledged, every half second for half a minute at most."""

    CYCLE = 8
    FIRST_FLOW = 7000

    def __init__(self, port: int, rate: float, seconds: float, flows: int) -> None:
        self.port, self.rate, self.seconds, self.flows = port, rate, seconds, flows
        self.sent: list[Sent] = []
        self.thread = threading.Thread(target=lambda: asyncio.run(self._post()), daemon=True)

    def event(self, i: int) -> tuple[str, int, bool]:
        """Event ``i``'s id, flow and whether it is a failure."""
        flow, turn = divmod(i, self.flows)[::-1]
        return f"chaos-{i}", self.FIRST_FLOW + flow, turn % self.CYCLE < 2

    async def _post(self) -> None:
        pool = Pool(self.port, 16, timeout=10)

        async def send(i: int) -> Posted:
            event_id, flow_id, failed = self.event(i)
            name = "FLOW_FAILED" if failed else "FLOW_SUCCESS"
            body, headers = webhook(name, event_id, flow_id=flow_id)
            request = http_request(self.port, f"/webhooks/{SOURCE}", body, headers)
            posted = await acknowledged(pool, request, every=0.5, give_up_after=30)
            self.sent.append(Sent(event_id, flow_id, failed, posted))
            return posted

        await paced(self.rate, int(self.rate * self.seconds), send)
        pool.close()

    def start(self) -> None:
        self.thread.start()

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise AssertionError("the load generator did not finish posting")

    @property
    def acknowledged(self) -> list[Sent]:
        return [s for s in self.sent if s.posted.acknowledged]


# The system ---------------------------------------------------------------------------------


@dataclass
class Chaos:
    """Everything of one chaos run: Redis, the stand-ins, the receiver, the workers, the
    traffic and the record."""

    redis: RedisProcess
    services: Services
    receiver: ReceiverProcess
    crew: Crew
    clock: Clock
    record: Record
    folder: Path

    def kill_worker(self, slot: int) -> bool:
        return self.crew.kill(slot)

    def start_worker(self, slot: int) -> bool:
        life = self.crew.lives[slot][-1]
        if life.killed_at is None:  # not killed by the test: running, or dead by itself
            return False
        self.crew.start(slot)
        return True

    def stop_redis(self, sig: signal.Signals) -> None:
        self.record.redis_stops.append(self.clock.now())
        self.redis.stop(sig)

    def start_redis(self) -> None:
        self.redis.start()

    def stop_receiver(self) -> None:
        self.receiver.stop(signal.SIGTERM)

    def start_receiver(self) -> None:
        self.receiver.launch()

    def answer_webhook(self, status: int, retry_after: int | None = None) -> None:
        self.services.answer_webhook(status, retry_after)

    def client(self) -> Redis:
        return connect(settings(self.redis.url), socket_timeout=5, socket_connect_timeout=5)

    def settled(self) -> bool:
        """Whether flowhooks has nothing left to do that RQ knows of: no job queued,
        scheduled or running."""
        queue = keys.QUEUE
        try:
            with self.client() as redis, redis.pipeline(transaction=False) as pipe:
                pipe.llen(f"rq:queue:{queue}")
                pipe.zcard(f"rq:scheduled:{queue}")
                pipe.zcard(f"rq:wip:{queue}")
                return not any(pipe.execute())
        except RedisError:
            return False


@contextmanager
def chaos_system(folder: Path, workers: int) -> Iterator[Chaos]:
    """A durable Redis, the stand-ins, the receiver and ``workers`` workers, all running;
    everything stopped at the end."""
    with ExitStack() as stack:
        redis = RedisProcess(durable=True)
        redis.start()
        stack.callback(redis.cleanup)
        services = stack.enter_context(Services(ROUTING_KEY))
        config = folder / "flowhooks.yaml"
        config.write_text(CONFIG.replace("PAGERDUTY_URL", services.url(PAGERDUTY_PATH)))
        env = child_env(
            **ENV,
            CHAOS_WEBHOOK_URL=services.url(WEBHOOK_PATH),
            CHAOS_ROUTING_KEY=ROUTING_KEY,
            FLOWHOOKS_REDIS_URL=redis.url,
            FLOWHOOKS_CONFIG=str(config),
            FLOWHOOKS_LOG_FORMAT="text",
        )
        clock = Clock()
        receiver = ReceiverProcess(env, folder / "receiver.log")
        receiver.start()
        stack.callback(receiver.stop, signal.SIGKILL)
        crew = Crew(workers, env, folder, clock)
        stack.callback(crew.stop_all)
        for slot in range(workers):
            crew.start(slot)
        yield Chaos(redis, services, receiver, crew, clock, Record(clock), folder)


# The verdict --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Duplicate:
    key: str
    event_id: str | None
    copies: tuple[float, ...]
    """When each copy arrived (test seconds)."""
    kill: float | None
    """The SIGKILL that explains it, if any."""


@dataclass(frozen=True)
class Reopening:
    dedup_key: str
    event_id: str | None
    at: float
    why: str


def duplicates(
    arrivals: Iterable[Arrival], kills: Sequence[float], clock: Clock
) -> list[Duplicate]:
    """Each ``Idempotency-Key`` delivered (answered 200) more than once, and the SIGKILL
    within :data:`DUPLICATE_WINDOW` of its first copy that explains it, if any."""
    copies: dict[str, list[Arrival]] = defaultdict(list)
    for arrival in arrivals:
        if arrival.status == 200 and arrival.idempotency_key is not None:
            copies[arrival.idempotency_key].append(arrival)
    found = []
    for key, delivered in copies.items():
        if len(delivered) < 2:
            continue
        first = clock.of(delivered[0].at)
        near = [k for k in kills if first - 0.5 <= k <= first + DUPLICATE_WINDOW]
        found.append(
            Duplicate(
                key,
                delivered[0].event_id,
                tuple(clock.of(a.at) for a in delivered),
                near[0] if near else None,
            )
        )
    return found


def reopenings(
    events: Iterable[PagerDutyEvent],
    sent: Iterable[Sent],
    received: Mapping[str, float],
    clock: Clock,
) -> list[Reopening]:
    """Incidents opened at PagerDuty for a failure of a flow whose earlier failures had
    already opened one, with no success of the flow received in between (by the receiver's
    ``received_at``): a stale or repeated trigger reopening what a resolve had closed."""
    by_id = {s.event_id: s for s in sent}
    streak: dict[str, int] = {}
    """A failure's streak: how many successes of its flow the receiver received before it."""
    for s in by_id.values():
        if s.failed and s.event_id in received:
            streak[s.event_id] = sum(
                1
                for other in by_id.values()
                if other.flow_id == s.flow_id
                and not other.failed
                and received.get(other.event_id, float("inf")) < received[s.event_id]
            )
    opened: dict[str, int] = {}
    found = []
    for event in events:
        if not event.opened:
            continue
        at = clock.of(event.at)
        index = streak.get(event.event_id or "")
        if index is None:
            found.append(Reopening(event.dedup_key, event.event_id, at, "not a known failure"))
        elif event.dedup_key in opened and index <= opened[event.dedup_key]:
            found.append(
                Reopening(
                    event.dedup_key,
                    event.event_id,
                    at,
                    f"its failure came after {index} successes of the flow, and an incident "
                    f"was already opened for a failure after {opened[event.dedup_key]}",
                )
            )
        if index is not None:
            opened[event.dedup_key] = max(index, opened.get(event.dedup_key, -1))
    return found


@dataclass
class Verdict:
    """What the chaos run came to: its counts, and each problem in words."""

    counts: list[str]
    problems: list[str]
    details: list[str]

    def summary(self) -> str:
        return "\n".join(self.counts)

    def report(self) -> str:
        return "\n".join([*self.problems, "", *self.counts, "", *self.details])


def keep_logs(folder: Path) -> None:
    """Copy the processes' logs to :data:`ARTIFACTS` (those of an earlier run go)."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    for log in folder.glob("*.log"):
        shutil.copy(log, ARTIFACTS / log.name)


def judge(chaos: Chaos, traffic: Traffic, settled: bool) -> Verdict:
    services, clock = chaos.services, chaos.clock
    services.fetch()
    delivered = {a.event_id for a in services.webhook if a.status == 200}
    received = {a.event_id: a.received_at for a in services.webhook if a.received_at and a.event_id}
    acked = traffic.acknowledged
    missing = [s for s in acked if s.event_id not in delivered]
    twice = duplicates(services.webhook, chaos.crew.kills, clock)
    unexplained = [d for d in twice if d.kill is None]
    reopened = reopenings(services.pagerduty, traffic.sent, received, clock)
    never = [s for s in traffic.sent if not s.posted.acknowledged]
    pd = services.pagerduty
    counts = [
        f"posted {len(traffic.sent)} events ({sum(s.failed for s in traffic.sent)} failures), "
        f"acknowledged {len(acked)}, never acknowledged {len(never)}"
        + (f" (last answers {sorted({str(s.posted.status) for s in never})})" if never else ""),
        f"webhook: {len(delivered & {s.event_id for s in acked})} of the acknowledged delivered,"
        f" {len(missing)} missing; {len(twice)} Idempotency-Keys delivered more than once "
        f"({len(twice) - len(unexplained)} within {DUPLICATE_WINDOW:g} s of a SIGKILL); "
        f"answers {_statuses(a.status for a in services.webhook)}",
        f"pagerduty: {sum(1 for e in pd if e.status == 202 and e.action == 'trigger')} "
        f"triggers and {sum(1 for e in pd if e.status == 202 and e.action == 'resolve')} "
        f"resolves accepted, {sum(1 for e in pd if e.opened)} incidents opened, "
        f"{len(reopened)} reopened without a new failure; answers "
        f"{_statuses(e.status for e in pd)}",
        f"workers SIGKILLed {len(chaos.crew.kills)} times, exited by themselves "
        f"{len(chaos.crew.self_exited())} times; the receiver restarted "
        f"{len(chaos.receiver.exits)} times (exit codes {chaos.receiver.exits}); Redis stopped "
        f"{len(chaos.record.redis_stops)} times; "
        + ("flowhooks settled at the end" if settled else "flowhooks still had jobs at the end"),
    ]
    problems = []
    if missing:
        problems.append(
            f"{len(missing)} of {len(acked)} acknowledged events never reached the webhook: "
            + ", ".join(_posted(s, clock) for s in missing[:10])
            + (" …" if len(missing) > 10 else "")
        )
    for d in unexplained:
        copies = ", ".join(f"{t:.1f} s" for t in d.copies)
        problems.append(
            f"Idempotency-Key {d.key} (event {d.event_id}) delivered {len(d.copies)} times, at "
            f"{copies}, with no SIGKILL within {DUPLICATE_WINDOW:g} s of the first copy "
            f"(SIGKILLs at {_times(chaos.crew.kills)}; Redis stopped at "
            f"{_times(chaos.record.redis_stops)})"
        )
    for life in chaos.crew.self_exited():
        noticed = clock.of(life.exited_at or 0.0)
        problems.append(
            f"worker {life.worker.name} exited by itself with code {life.code} (noticed at "
            f"{noticed:.1f} s; Redis stopped at {_times(chaos.record.redis_stops)})"
        )
    for r in reopened:
        problems.append(
            f"PagerDuty incident {r.dedup_key} opened again at {r.at:.1f} s by event "
            f"{r.event_id}: {r.why}"
        )
    details = [
        f"the logs: {ARTIFACTS}",
        "what the test did:",
        *chaos.record.lines,
        "workers:",
        *chaos.crew.describe(),
    ]
    for life in chaos.crew.self_exited():
        details += [f"--- the end of {life.worker.name}'s log", tail(life.worker.log)]
    if problems:
        details += ["--- the end of the receiver's log", tail(chaos.receiver.log)]
        for lives in chaos.crew.lives:
            life = lives[-1]
            if life.exited_at is None:
                details += [f"--- the end of {life.worker.name}'s log", tail(life.worker.log)]
    return Verdict(counts, problems, details)


def _posted(sent: Sent, clock: Clock) -> str:
    answered = sent.posted.answered_at
    return (
        f"{sent.event_id} (posted {clock.of(sent.posted.first_at):.1f} s, acknowledged "
        f"{clock.of(answered) if answered else float('nan'):.1f} s)"
    )


def _statuses(statuses: Iterable[int]) -> str:
    counted: dict[int, int] = defaultdict(int)
    for status in statuses:
        counted[status] += 1
    return ", ".join(f"{status}: {n}" for status, n in sorted(counted.items())) or "none"


def _times(values: Iterable[float]) -> str:
    return ", ".join(f"{v:.1f} s" for v in values) or "never"


def wait_delivered(chaos: Chaos, traffic: Traffic, timeout: float) -> bool:
    """Wait until every acknowledged event reached the webhook, then until flowhooks has
    nothing left to do (so late copies show); whether it settled within ``timeout``."""
    deadline = time.monotonic() + timeout
    wanted = {s.event_id for s in traffic.acknowledged}

    def arrived() -> bool:
        chaos.crew.notice_exits()
        chaos.services.fetch()
        return wanted <= {a.event_id for a in chaos.services.webhook if a.status == 200}

    if not wait_until(arrived, deadline - time.monotonic(), interval=0.5):
        return False
    quiet = 0
    while time.monotonic() < deadline:
        quiet = quiet + 1 if chaos.settled() else 0
        if quiet >= 4:  # two seconds with nothing queued, scheduled or running
            return True
        time.sleep(0.5)
    return False
