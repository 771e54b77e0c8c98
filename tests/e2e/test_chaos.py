"""Chaos, end to end, with real processes: while signed events are posted steadily (failures
and successes of a set of flows, each retried until acknowledged, as Etlworks does), workers are
SIGKILLed again and again, Redis (AOF, ``appendfsync always``) is SIGKILLed and later SIGTERMed
and started again, the receiver is restarted, and the webhook endpoint answers 503, then 429
with ``Retry-After``, before it answers 200 again. Then: every acknowledged event is delivered,
no ``Idempotency-Key`` is delivered twice outside the documented window (a worker killed after
sending and before recording), no PagerDuty incident is opened twice for one run of failures of
a flow, and no worker exited by itself."""

import signal
from functools import partial
from pathlib import Path

import pytest

from tests.e2e.chaos_support import (
    Chaos,
    Step,
    Traffic,
    chaos_system,
    judge,
    keep_logs,
    run_schedule,
    wait_delivered,
)

pytestmark = pytest.mark.slow

WORKERS = 3
RATE = 5.0
"""Events a second, for :data:`FLOWS` flows in turn."""
FLOWS = 10
POSTING = 40.0
"""Seconds of posting, while the schedule runs."""
WAIT = 75.0
"""Seconds after posting for everything to arrive and flowhooks to settle: a killed worker's
work is to run again within 60 s, with default settings."""
KILLS = ((4.0, 0), (10.0, 1), (20.0, 2), (27.0, 0), (34.0, 1))
"""When the worker of which slot is SIGKILLed (it starts again a second later)."""


def schedule(chaos: Chaos) -> list[Step]:
    steps = [
        Step(2.0, "the webhook answers 503", partial(chaos.answer_webhook, 503)),
        Step(9.0, "the webhook answers 429, Retry-After: 1", partial(chaos.answer_webhook, 429, 1)),
        Step(14.0, "the webhook answers 200", partial(chaos.answer_webhook, 200)),
        Step(15.0, "Redis SIGKILLed", partial(chaos.stop_redis, signal.SIGKILL)),
        Step(17.0, "Redis started again", chaos.start_redis),
        Step(24.0, "the receiver SIGTERMed (exited)", chaos.stop_receiver),
        Step(24.0, "the receiver started again", chaos.start_receiver),
        Step(30.0, "Redis SIGTERMed", partial(chaos.stop_redis, signal.SIGTERM)),
        Step(31.0, "Redis started again", chaos.start_redis),
    ]
    for at, slot in KILLS:
        steps.append(
            Step(at, f"worker slot {slot + 1} SIGKILLed", partial(chaos.kill_worker, slot))
        )
        steps.append(
            Step(at + 1, f"worker slot {slot + 1} started again", partial(chaos.start_worker, slot))
        )
    return steps


@pytest.mark.timeout(240)
def test_acknowledged_events_arrive_once_through_kills_restarts_and_an_outage(
    tmp_path: Path,
) -> None:
    with chaos_system(tmp_path, WORKERS) as chaos:
        traffic = Traffic(chaos.receiver.port, RATE, POSTING, FLOWS)
        chaos.clock.restart()
        traffic.start()
        run_schedule(schedule(chaos), chaos.clock, chaos.record, chaos.crew)
        traffic.join(POSTING + 45)
        chaos.record.note("posting ended")
        settled = wait_delivered(chaos, traffic, WAIT)
        chaos.record.note("waiting ended" + (", flowhooks settled" if settled else ""))
        verdict = judge(chaos, traffic, settled)
        if verdict.problems:
            keep_logs(tmp_path)
    print(verdict.summary())
    assert not verdict.problems, verdict.report()
