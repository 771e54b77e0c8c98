"""From a signed webhook to the people who must hear of it: the real receiver, real worker
processes and a real Redis, with loopback servers standing in for Slack, PagerDuty, a generic
webhook and an SMTP server (aiosmtpd)."""

import base64
import email.policy
import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from rq.queue import Queue
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from config import keys
from tests.e2e.delivery_support import (
    PAGERDUTY_PATH,
    ROUTING_KEY,
    SLACK_PATH,
    WEBHOOK_PATH,
    Flowhooks,
    HoldingStandIn,
    Sinks,
    attempts,
    deliveries,
    fast_forward_rq,
    running,
    serving_sinks,
    stages,
)
from tests.support import ENV
from tests.workers.sinks.standins import Recorded, Reply

pytestmark = pytest.mark.slow

FAILURES_TO = """
group_wait: 1s
actions: []
routes:
  - matchers: ['kind="flow.failed"']
    actions: [{actions}]
    resolve: true
    repeat_interval: 1h
"""


def failures_to(*actions: str) -> str:
    return FAILURES_TO.format(actions=", ".join(actions))


@pytest.fixture(scope="module")
def sinks() -> Iterator[Sinks]:
    with serving_sinks() as served:
        yield served


def start(
    redis: Redis, redis_url: str, sinks: Sinks, tmp_path: Path, routes: str
) -> Iterator[Flowhooks]:
    with running(redis, redis_url, sinks, tmp_path, routes) as flowhooks:
        flowhooks.start_worker()
        yield flowhooks


def mrkdwn_texts(message: dict[str, Any]) -> list[str]:
    """Every text of a Block Kit message: the fallback and each block's."""
    texts = [message["text"]]
    for block in message["blocks"]:
        if "text" in block:
            texts.append(block["text"]["text"])
        texts.extend(element["text"] for element in block.get("elements", []))
    return texts


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


# 1. Slack ---------------------------------------------------------------------------------


@pytest.fixture
def slack_only(redis: Redis, redis_url: str, sinks: Sinks, tmp_path: Path) -> Iterator[Flowhooks]:
    yield from start(redis, redis_url, sinks, tmp_path, failures_to("slack"))


def test_a_failure_reaches_slack_as_one_block_kit_message(
    slack_only: Flowhooks, sinks: Sinks
) -> None:
    ref = slack_only.post(
        "FLOW_FAILED", "slack-1", flow_id=701, flow_name="orders & <returns>", error="ORA-03113"
    )
    [entry] = slack_only.wait_deliveries(ref, "slack", 1)
    timeline = slack_only.wait_routed(ref)

    [request] = sinks.slack.requests
    assert (request.method, request.path) == ("POST", SLACK_PATH)
    assert request.headers["content-type"] == "application/json"
    message = request.json()
    header, fields, error, footer = message["blocks"]
    assert header == {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": "Flow failed: orders &amp; &lt;returns&gt;",
            "emoji": True,
        },
    }
    assert fields["type"] == "section"
    assert fields["text"]["type"] == "mrkdwn"
    assert "*Flow:* orders &amp; &lt;returns&gt; (id 701)" in fields["text"]["text"]
    assert "*Status:* error" in fields["text"]["text"]
    assert "*Source:* etl" in fields["text"]["text"]
    assert "*Duration:* 12m 34s" in fields["text"]["text"]
    assert error["text"]["text"] == "*Error*\n```\nORA-03113\n```"
    assert footer["type"] == "context"
    assert footer["elements"][0]["text"].startswith("Route: routes.routes[0] · <https://")
    assert message["text"] == "Flow failed: orders &amp; &lt;returns&gt; - ORA-03113"

    assert stages(timeline) == ["received", "picked_up", "routed", "delivery"]
    assert timeline[1]["job_id"] == keys.route_job_id(ref)
    assert timeline[2]["deliveries"] == [
        {"route": "routes.routes[0]", "action": "slack", "kind": "notify"}
    ]
    assert (entry["outcome"], entry["status"], entry["attempt"]) == ("delivered", 200, 1)
    assert (entry["route"], entry["kind"]) == ("routes.routes[0]", "notify")
    assert entry["summary"] == "Flow failed: orders & <returns>"
    assert isinstance(entry["duration_ms"], int)
    assert SLACK_PATH not in json.dumps(timeline)  # the URL is a secret


# 2. PagerDuty -----------------------------------------------------------------------------


@pytest.fixture
def pager_only(redis: Redis, redis_url: str, sinks: Sinks, tmp_path: Path) -> Iterator[Flowhooks]:
    yield from start(redis, redis_url, sinks, tmp_path, failures_to("pager"))


def test_pagerduty_is_triggered_once_and_resolved_by_the_next_success(
    pager_only: Flowhooks, sinks: Sinks
) -> None:
    first = pager_only.post("FLOW_FAILED", "pd-fail-1", flow_id=802, flow_name="marts")
    pager_only.wait_routed(first)
    [trigger] = sinks.pagerduty.requests
    assert trigger.path == PAGERDUTY_PATH
    body = trigger.json()
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == "flowhooks:etl:802"
    assert body["routing_key"] == ROUTING_KEY
    assert body["payload"]["severity"] == "critical"
    assert body["payload"]["summary"].startswith("Flow failed: marts (etl): Database connection")
    assert body["payload"]["custom_details"]["flow_id"] == "802"
    assert [
        (e["outcome"], e["status"]) for e in deliveries(pager_only.timeline(first), "pager")
    ] == [("delivered", 202)]

    again = pager_only.post("FLOW_FAILED", "pd-fail-2", flow_id=802, flow_name="marts")
    timeline = pager_only.wait_routed(again)
    assert stages(timeline) == ["received", "picked_up", "routed", "suppressed"]
    suppressed = timeline[-1]
    assert (suppressed["route"], suppressed["action"]) == ("routes.routes[0]", "pager")
    assert suppressed["reason"] == "repeat_interval"
    assert len(sinks.pagerduty.requests) == 1

    success = pager_only.post("FLOW_SUCCESS", "pd-ok-1", flow_id=802, flow_name="marts")
    [entry] = pager_only.wait_deliveries(success, "pager", 1)
    pager_only.wait_routed(success)
    assert len(sinks.pagerduty.requests) == 2
    resolve = sinks.pagerduty.requests[1].json()
    assert resolve == {
        "event_action": "resolve",
        "dedup_key": "flowhooks:etl:802",
        "routing_key": ROUTING_KEY,
    }
    assert (entry["kind"], entry["outcome"], entry["status"]) == ("resolve", "delivered", 202)
    assert ROUTING_KEY not in json.dumps(pager_only.timeline(success))


def test_a_failure_retried_past_the_recovery_does_not_hold_back_the_next_one(
    slack_only: Flowhooks, sinks: Sinks
) -> None:
    """The failure's Slack message is delivered only after the flow's next success was
    routed: it opens no incident, so the failure after that is not a "repeat"."""
    sinks.slack.reset(Reply(429, b"rate_limited", headers={"Retry-After": "2"}))
    stale = slack_only.post("FLOW_FAILED", "stale-1", flow_id=1601, flow_name="ledger")
    slack_only.wait_deliveries(stale, "slack", 1)
    recovered = slack_only.post("FLOW_SUCCESS", "stale-ok", flow_id=1601, flow_name="ledger")
    routed = slack_only.wait_routed(recovered)[-1]
    [_, late] = slack_only.wait_deliveries(stale, "slack", 2)
    assert (late["outcome"], late["attempt"]) == ("delivered", 2)
    assert _seconds(routed["at"]) < _seconds(late["at"])

    again = slack_only.post("FLOW_FAILED", "stale-2", flow_id=1601, flow_name="ledger")
    [entry] = slack_only.wait_deliveries(again, "slack", 1)
    assert entry["outcome"] == "delivered"
    # it may have waited its turn in the lane (Slack's pace), never as a repeat
    waited = [s for s in stages(slack_only.timeline(again)) if s != "lane"]
    assert waited == ["received", "picked_up", "routed", "delivery"]
    assert len(sinks.slack.requests) == 3  # no "Recovered" message: nothing was open


def test_a_page_retried_past_the_recovery_is_not_sent(pager_only: Flowhooks, sinks: Sinks) -> None:
    """The failure's trigger is refused (429) until the flow's next success was routed: sent
    then, it would open an incident that nothing resolves, so it is skipped."""
    # long enough for the success to be routed first on a busy machine
    sinks.pagerduty.reset(Reply(429, b"{}", headers={"Retry-After": "15"}))
    stale = pager_only.post("FLOW_FAILED", "pd-stale-1", flow_id=1602, flow_name="ledger")
    pager_only.wait_deliveries(stale, "pager", 1)
    recovered = pager_only.post("FLOW_SUCCESS", "pd-stale-ok", flow_id=1602, flow_name="ledger")
    pager_only.wait_routed(recovered)
    [failed, skipped] = pager_only.wait_deliveries(stale, "pager", 2)
    assert (failed["outcome"], failed["status"]) == ("failed", 429)
    assert (skipped["outcome"], skipped["reason"]) == ("skipped", "the flow recovered since")
    assert len(sinks.pagerduty.requests) == 1  # the refused trigger: no other, no resolve


# 3. Email ---------------------------------------------------------------------------------


@pytest.fixture
def mail_only(redis: Redis, redis_url: str, sinks: Sinks, tmp_path: Path) -> Iterator[Flowhooks]:
    yield from start(redis, redis_url, sinks, tmp_path, failures_to("mail"))


def parse_mail(content: bytes | str) -> EmailMessage:
    raw = content.encode() if isinstance(content, str) else content
    message = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def parts_of(message: EmailMessage) -> tuple[str, str]:
    """The text and the HTML part of a ``multipart/alternative`` mail, in that order."""
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    text, html = (p.get_content() for p in parts)
    assert isinstance(text, str) and isinstance(html, str)
    return text, html


def test_an_email_arrives_as_multipart_alternative_with_the_html_escaped(
    mail_only: Flowhooks, sinks: Sinks
) -> None:
    ref = mail_only.post("FLOW_FAILED", "mail-1", flow_id=903, flow_name="ledger <b>&</b> co")
    [entry] = mail_only.wait_deliveries(ref, "mail", 1)
    assert (entry["outcome"], entry["status"]) == ("delivered", None)

    [envelope] = sinks.smtp.envelopes
    assert envelope.mail_from == "flowhooks@example.com"
    assert envelope.rcpt_tos == ["data@example.com"]
    assert envelope.content is not None
    message = parse_mail(envelope.content)
    assert message["Subject"] == "[flowhooks] Flow failed: ledger <b>&</b> co"
    assert message["From"] == "flowhooks@example.com"
    assert message["To"] == "data@example.com"
    assert message["Auto-Submitted"] == "auto-generated"
    text, html = parts_of(message)
    assert "Flow:      ledger <b>&</b> co (id 903)" in text
    assert "<h2>Flow failed: ledger &lt;b&gt;&amp;&lt;/b&gt; co</h2>" in html
    assert "<b>" not in html


# 4. A Slack outage ------------------------------------------------------------------------


@pytest.fixture
def slack_and_pager(
    redis: Redis, redis_url: str, sinks: Sinks, tmp_path: Path
) -> Iterator[Flowhooks]:
    yield from start(redis, redis_url, sinks, tmp_path, failures_to("pager", "slack"))


def test_a_slack_outage_is_retried_alone_until_exactly_one_message_arrives(
    slack_and_pager: Flowhooks, sinks: Sinks
) -> None:
    unavailable = Reply(503, b"service unavailable")
    limited = Reply(429, b"rate_limited", headers={"Retry-After": "2"})
    sinks.slack.reset(unavailable, unavailable, unavailable, limited, default=Reply(200, b"ok"))

    ref = slack_and_pager.post("FLOW_FAILED", "outage-1", flow_id=1001, flow_name="billing")
    slack_and_pager.wait_deliveries(ref, "slack", 5)
    timeline = slack_and_pager.timeline(ref)

    assert attempts(timeline, "slack") == [
        ("failed", 1, 503),
        ("failed", 2, 503),
        ("failed", 3, 503),
        ("failed", 4, 429),
        ("delivered", 5, 200),
    ]
    failed = deliveries(timeline, "slack")[:4]
    assert all(e["retryable"] for e in failed)
    assert (
        failed[3]["error"] == "slack: HTTP 429 Too Many Requests: rate_limited (retryable, "
        "retry after 2s)"
    )
    assert SLACK_PATH not in json.dumps(timeline)
    # The retry after the 429 was scheduled at least Retry-After past the failure (a lower
    # bound the design guarantees, not a measure of speed).
    delivered = deliveries(timeline, "slack")[4]
    assert _seconds(delivered["at"]) - _seconds(failed[3]["at"]) >= 2

    # Five requests of one message, the last of them the only one Slack took; PagerDuty, on
    # the same route, was paged once.
    assert len(sinks.slack.requests) == 5
    assert len({r.body for r in sinks.slack.requests}) == 1
    assert attempts(timeline, "pager") == [("delivered", 1, 202)]
    assert len(sinks.pagerduty.requests) == 1

    # Nothing is left to run or dead: a while later, still one page and five Slack requests.
    queue = Queue(keys.QUEUE, connection=slack_and_pager.redis, serializer=JSONSerializer)
    slack_and_pager.wait(
        lambda: queue.scheduled_job_registry.count == 0 and queue.count == 0, "an idle queue"
    )
    assert FailedJobRegistry(queue=queue).count == 0
    assert len(sinks.slack.requests) == 5
    assert len(sinks.pagerduty.requests) == 1
    logs = slack_and_pager.worker_logs()
    assert SLACK_PATH not in logs and ROUTING_KEY not in logs


# 5. Dead letters --------------------------------------------------------------------------


def test_a_400_from_pagerduty_is_dead_lettered_untried_and_replayed_once(
    pager_only: Flowhooks, sinks: Sinks
) -> None:
    sinks.pagerduty.reset(
        Reply(400, b'{"status":"invalid event","message":"Event object is invalid"}'),
        default=Reply(202, b'{"status":"success"}'),
    )
    ref = pager_only.post("FLOW_FAILED", "dead-1", flow_id=1102, flow_name="crm")
    pager_only.wait_deliveries(ref, "pager", 2)
    timeline = pager_only.wait_routed(ref)
    failed, dead = deliveries(timeline, "pager")
    assert (failed["outcome"], failed["attempt"], failed["status"], failed["retryable"]) == (
        "failed",
        1,
        400,
        False,
    )
    assert dead["outcome"] == "dead_letter"
    assert dead["reason"] == "permanent failure: pagerduty: HTTP 400 Bad Request (permanent)"
    assert len(sinks.pagerduty.requests) == 1  # untried: no second attempt

    listed = pager_only.cli("dlq", "list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["job"] == dead["job_id"]
    assert (row["task"], row["ref"], row["route"], row["action"], row["kind"]) == (
        "workers.tasks.deliver",
        ref,
        "routes.routes[0]",
        "pager",
        "notify",
    )
    assert row["reason"] == dead["reason"]
    shown = pager_only.cli("dlq", "show", row["job"], "-o", "json")
    assert shown.returncode == 0, shown.stderr
    assert ROUTING_KEY not in shown.stdout

    # "The fix": PagerDuty answers 202 from now on (the script is spent).
    replayed = pager_only.cli("dlq", "replay", row["job"])
    assert (replayed.returncode, replayed.stdout) == (0, f"requeued {row['job']}\n"), (
        replayed.stderr
    )
    [*_, entry] = pager_only.wait_deliveries(ref, "pager", 3)
    assert (entry["outcome"], entry["status"]) == ("delivered", 202)
    assert len(sinks.pagerduty.requests) == 2
    assert sinks.pagerduty.requests[1].json()["dedup_key"] == "flowhooks:etl:1102"
    queue = Queue(keys.QUEUE, connection=pager_only.redis, serializer=JSONSerializer)
    assert FailedJobRegistry(queue=queue).get_job_ids() == []

    # Replaying again finds nothing to replay, and a duplicate of the delivery job (say, one
    # requeued by hand) sends nothing more: the delivery is recorded as done.
    again = pager_only.cli("dlq", "replay", row["job"])
    assert again.returncode == 1
    assert row["job"] in again.stderr and "dead-letter registry" in again.stderr
    spec = json.loads(shown.stdout)["args"][0]
    queue.enqueue("workers.tasks.deliver", spec, job_id="duplicate-of-dead-1", result_ttl=0)
    [*_, skipped] = pager_only.wait_deliveries(ref, "pager", 4)
    assert (skipped["outcome"], skipped["reason"]) == ("skipped", "already delivered")
    assert len(sinks.pagerduty.requests) == 2
    assert ROUTING_KEY not in pager_only.worker_logs()


def test_a_retry_that_meets_a_permanent_error_is_dead_lettered_once(
    slack_only: Flowhooks, sinks: Sinks
) -> None:
    """The dead letter is the retry job itself, and RQ's own retries (for jobs that did not
    finish) do not run it again."""
    sinks.slack.reset(Reply(503, b"service unavailable"), default=Reply(404, b"no_service"))
    ref = slack_only.post("FLOW_FAILED", "dead-2", flow_id=1103, flow_name="crm")
    [*_, dead] = slack_only.wait_deliveries(ref, "slack", 3)
    assert attempts(slack_only.timeline(ref), "slack") == [
        ("failed", 1, 503),
        ("failed", 2, 404),
        ("dead_letter", 2, None),
    ]
    queue = Queue(keys.QUEUE, connection=slack_only.redis, serializer=JSONSerializer)
    failed = FailedJobRegistry(queue=queue)
    slack_only.wait(lambda: failed.get_job_ids() == [dead["job_id"]], "the dead letter")
    listed = slack_only.cli("dlq", "list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (row["job"], row["action"], row["attempt"]) == (dead["job_id"], "slack", 2)
    assert row["reason"].endswith(
        "permanent failure: slack: HTTP 404 Not Found: no_service (permanent)"
    )
    assert queue.scheduled_job_registry.count == 0 and queue.count == 0
    assert len(sinks.slack.requests) == 2


# Grouping ----------------------------------------------------------------------------------

GROUPED = """
actions: []
routes:
  - matchers: ['kind="flow.failed"']
    actions: [slack]
    group_by: [source]
    group_wait: 1s
    group_interval: 2s
"""


@pytest.fixture
def grouped(redis: Redis, redis_url: str, sinks: Sinks, tmp_path: Path) -> Iterator[Flowhooks]:
    yield from start(redis, redis_url, sinks, tmp_path, GROUPED)


def test_failures_of_a_group_become_one_digest_per_group_interval(
    grouped: Flowhooks, sinks: Sinks
) -> None:
    first = [grouped.post("FLOW_FAILED", f"g-{i}", flow_id=1500 + i) for i in range(3)]
    [digest] = grouped.wait_deliveries(first[0], "slack", 1)
    later = [grouped.post("FLOW_FAILED", f"g-{i}", flow_id=1500 + i) for i in range(3, 5)]
    [second] = grouped.wait_deliveries(later[0], "slack", 1)

    assert [r.json()["text"] for r in sinks.slack.requests] == [
        "3 events: source=etl",
        "2 events: source=etl",
    ]
    for ref in first:
        assert stages(grouped.timeline(ref)) == [
            "received",
            "picked_up",
            "routed",
            "grouped",
            "delivery",
        ]
    assert (digest["kind"], digest["outcome"]) == ("digest", "delivered")
    # The batch that follows a digest waits for group_interval after it (a lower bound the
    # design guarantees, not a measure of speed).
    assert _seconds(second["at"]) - _seconds(digest["at"]) >= 2


# 6. A worker killed mid-delivery -----------------------------------------------------------


def kill_mid_delivery(system: Flowhooks, slack: HoldingStandIn, event_id: str, flow_id: int) -> str:
    """Start a worker, send a failure, and SIGKILL the worker (its scheduler too) while Slack
    holds a request; the event's ref."""
    first = system.start_worker()
    ref = system.post("FLOW_FAILED", event_id, flow_id=flow_id, flow_name="inventory")
    system.wait(lambda: slack.held == 1, "a held request")
    first.kill()
    slack.release()
    return ref


@dataclass(frozen=True)
class Killed:
    """Where a worker is killed: in the route job's first attempt, in the retry job that
    follows a first attempt answered with ``statuses`` (shown on the timeline as
    ``attempts``), or in the job that sends a group's digest."""

    job: str
    statuses: tuple[int, ...] = ()
    attempts: tuple[tuple[Any, ...], ...] = ()
    routes: str = failures_to("slack")


@pytest.mark.parametrize(
    "killed",
    [
        Killed("route"),
        Killed("retry", (503,), (("failed", 1, 503),)),
        Killed("flush", routes=GROUPED),
    ],
    ids=lambda k: f"in-the-{k.job}-job",
)
def test_a_worker_killed_mid_delivery_is_recovered_and_the_delivery_made(
    redis: Redis, redis_url: str, sinks: Sinks, tmp_path: Path, killed: Killed
) -> None:
    """The first worker dies (SIGKILL) while Slack holds its request, be it
    the first attempt (in the route job), a retry or a digest (jobs of their own); RQ's
    abandoned-job recovery, in the next worker to start, runs that job again. Time is
    fast-forwarded past the expiries RQ waits for (see :func:`fast_forward_rq`)."""
    with (
        HoldingStandIn(*killed.statuses) as slack,
        running(
            redis,
            redis_url,
            sinks,
            tmp_path,
            killed.routes,
            secrets={"SLACK_WEBHOOK_URL": slack.url(SLACK_PATH)},
        ) as system,
    ):
        ref = kill_mid_delivery(system, slack, f"killed-{killed.job}", 1203)
        before = list(killed.attempts)
        assert attempts(system.timeline(ref), "slack") == before

        fast_forward_rq(system.redis)
        system.start_worker()
        system.wait_deliveries(ref, "slack", len(before) + 1)
        timeline = system.wait_routed(ref)
        assert attempts(timeline, "slack") == [*before, ("delivered", len(before) + 1, 200)]
        picked = [e["worker"] for e in timeline if e["stage"] == "picked_up"]
        rerun = killed.job == "route"
        assert picked == (["e2e-worker-1", "e2e-worker-2"] if rerun else ["e2e-worker-1"])
        # At least once: the request lost with the worker, then the one answered; one message.
        assert len(slack.bodies) == len(before) + 2
        assert len(set(slack.bodies)) == 1
        queue = Queue(keys.QUEUE, connection=system.redis, serializer=JSONSerializer)
        assert FailedJobRegistry(queue=queue).get_job_ids() == []


def test_a_worker_killed_mid_delivery_is_recovered_in_real_time(
    redis: Redis, redis_url: str, sinks: Sinks, tmp_path: Path
) -> None:
    """No fast-forward, maintenance every second: the killed job's started entry lapses 15 s
    after its worker's last beat, whatever the job's time limit (see
    ``tests/e2e/test_resilience_e2e.py`` for the default settings)."""
    with (
        HoldingStandIn() as slack,
        running(
            redis,
            redis_url,
            sinks,
            tmp_path,
            failures_to("slack"),
            secrets={"SLACK_WEBHOOK_URL": slack.url(SLACK_PATH)},
            worker_settings={"FLOWHOOKS_MAINTENANCE_INTERVAL": "1"},
        ) as system,
    ):
        ref = kill_mid_delivery(system, slack, "killed-real-time", 1204)
        system.start_worker()
        [entry] = system.wait_deliveries(ref, "slack", 1, timeout=30)
        assert entry["outcome"] == "delivered"


# 7. Injection -----------------------------------------------------------------------------

EVIL_NAME = "nightly <!channel> {{ 7*7 }}\r\nBcc: victim@example.com <script>alert(1)</script> &"
EVIL_ERROR = "boom <!here> {{ 7*7 }}\r\nX-Injected: yes\r\n\r\n<script>steal()</script>"


@pytest.fixture
def every_sink(redis: Redis, redis_url: str, sinks: Sinks, tmp_path: Path) -> Iterator[Flowhooks]:
    yield from start(
        redis, redis_url, sinks, tmp_path, failures_to("slack", "pager", "mail", "hook")
    )


def test_event_data_is_inert_in_every_sink(every_sink: Flowhooks, sinks: Sinks) -> None:
    ref = every_sink.post(
        "FLOW_FAILED", "evil-1", flow_id=1301, flow_name=EVIL_NAME, error=EVIL_ERROR
    )
    for action in ("slack", "pager", "mail", "hook"):
        [entry] = every_sink.wait_deliveries(ref, action, 1)
        assert entry["outcome"] == "delivered", entry
    stored = every_sink.event(ref)
    name, error = stored["flow_name"], stored["error"]
    assert "<!channel>" in name and "{{ 7*7 }}" in name and "\r\n" in name

    # Slack: every text escaped, so nobody is mentioned and no markup survives.
    [slack] = sinks.slack.requests
    for text in mrkdwn_texts(slack.json()):
        assert "<!" not in text and "<script>" not in text
    slack_text = json.dumps(slack.json())
    assert "&lt;!channel&gt; {{ 7*7 }}" in slack_text
    assert "&lt;!here&gt; {{ 7*7 }}" in slack_text
    assert "&lt;script&gt;steal()&lt;/script&gt;" in slack_text
    header = slack.json()["blocks"][0]["text"]["text"]
    assert "\n" not in header and "\r" not in header
    assert "&lt;!channel&gt; {{ 7*7 }} Bcc: victim@example.com &lt;script&gt;" in header

    # PagerDuty: plain text, one line, the template syntax left as text.
    [pager] = sinks.pagerduty.requests
    summary = pager.json()["payload"]["summary"]
    assert "\n" not in summary and "\r" not in summary
    assert "<!channel> {{ 7*7 }} Bcc: victim@example.com <script>alert(1)</script> &" in summary
    assert pager.json()["payload"]["custom_details"]["flow_name"] == name

    # Email: no header added, the subject one line, the HTML escaped.
    [envelope] = sinks.smtp.envelopes
    assert envelope.rcpt_tos == ["data@example.com"]
    assert envelope.content is not None
    message = parse_mail(envelope.content)
    assert message["Bcc"] is None and message["X-Injected"] is None
    assert sorted(message.keys()) == sorted(
        [
            "Subject",
            "From",
            "To",
            "Date",
            "Message-ID",
            "Auto-Submitted",
            "Content-Type",
            "MIME-Version",
        ]
    )
    subject = str(message["Subject"])
    assert "\n" not in subject and "\r" not in subject
    assert "{{ 7*7 }}" in subject
    text, html = parts_of(message)
    assert "<script>" not in html and "<!channel>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;script&gt;steal()&lt;/script&gt;" in html
    assert "<h2>Flow failed: nightly &lt;!channel&gt; {{ 7*7 }}" in html
    assert "{{ 7*7 }}" in text

    # Webhook: the values travel as JSON strings, byte for byte, signed.
    [hook] = sinks.webhook.requests
    assert hook.path == WEBHOOK_PATH
    body = hook.json()
    assert body["event"]["flow_name"] == name
    assert body["event"]["error"] == error
    assert "raw" not in body["event"]
    verify_standard_webhooks(hook)


def verify_standard_webhooks(request: Recorded) -> None:
    """The signature the far side would check (Standard Webhooks), computed here."""
    key = base64.b64decode(ENV["WHSEC"].removeprefix("whsec_"))
    msg_id, stamp = request.headers["webhook-id"], request.headers["webhook-timestamp"]
    signed = f"{msg_id}.{stamp}.".encode() + request.body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert request.headers["webhook-signature"] == expected
    assert request.headers["idempotency-key"] == msg_id


# 8. Silences ------------------------------------------------------------------------------


def test_a_silence_suppresses_matching_failures_until_it_is_expired(
    slack_only: Flowhooks, sinks: Sinks
) -> None:
    added = slack_only.cli(
        "silence",
        "add",
        "--matcher",
        'flow_name=~"staging-.*"',
        "--duration",
        "2h",
        "--comment",
        "test",
        "--author",
        "e2e",
    )
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.splitlines()[1].split()[0]  # under the header row
    assert " active " in added.stdout

    silenced = slack_only.post("FLOW_FAILED", "quiet-1", flow_id=1401, flow_name="staging-orders")
    timeline = slack_only.wait_routed(silenced)
    assert stages(timeline) == ["received", "picked_up", "routed", "suppressed"]
    assert (timeline[-1]["reason"], timeline[-1]["detail"]) == ("silenced", silence_id)
    assert timeline[-1]["action"] == "slack"

    other = slack_only.post("FLOW_FAILED", "loud-1", flow_id=1402, flow_name="prod-orders")
    [entry] = slack_only.wait_deliveries(other, "slack", 1)
    assert entry["outcome"] == "delivered"
    assert len(sinks.slack.requests) == 1

    expired = slack_only.cli("silence", "expire", silence_id)
    assert expired.returncode == 0, expired.stderr
    assert " expired " in expired.stdout

    after = slack_only.post("FLOW_FAILED", "quiet-2", flow_id=1401, flow_name="staging-orders")
    [entry] = slack_only.wait_deliveries(after, "slack", 1)
    assert entry["outcome"] == "delivered"
    assert len(sinks.slack.requests) == 2
    assert "staging-orders" in sinks.slack.requests[1].json()["text"]
