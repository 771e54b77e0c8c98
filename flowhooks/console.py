"""What the console's pages do, on the command line: ``overview``, ``incidents``,
``deliveries`` (every attempt of an action, dead letters replayed in bulk) and ``sessions``,
through the code the admin API uses (:mod:`receiver.admin.health`, :mod:`config.incidents`,
:mod:`config.activity`, :mod:`config.deadletters`, :mod:`receiver.admin.sessions`)."""

import sys
import time
from datetime import UTC, datetime
from typing import Any

import click

from config import activity, deadletters, incidents
from flowhooks.common import Command, Group, Target, fail, redis_option, usage
from flowhooks.operations import _user
from flowhooks.output import Output, document, lines, output_option, table, when
from receiver.admin import health, sessions
from receiver.admin.queries import MAX_MINUTES, OUTCOMES
from receiver.admin.reports import duration


@click.command(cls=Command)
@click.option(
    "--minutes",
    type=click.IntRange(5, MAX_MINUTES),
    default=60,
    show_default=True,
    help="The window, ending now.",
)
@output_option
@redis_option
def overview(minutes: int, output: Output, redis: Target) -> None:
    """The system at a glance: traffic, failures by flow, queue, workers, scheduler, dead
    letters, incidents, silences."""
    found = health.overview(redis.connect(), time.time(), minutes)
    if output == "json":
        document(found)
        return
    queue = found["queue"]
    oldest = queue["oldestAgeSeconds"]
    beating = [w for w in found["workers"] if w["beating"]]
    holder = found["scheduler"]["holder"]
    facts = [
        ("window", f"the last {duration(minutes * 60)}"),
        ("received", sum(found["received"])),
        ("delivered", sum(found["delivered"])),
        ("failed attempts", sum(found["failed"])),
        ("queued", f"{queue['depth']}" + (f" (oldest {duration(oldest)})" if oldest else "")),
        ("running", queue["running"]),
        ("scheduled", queue["scheduled"]),
        ("workers alive", f"{len(beating)} of {len(found['workers'])}"),
        ("scheduler", holder or "none: delayed jobs wait"),
        ("dead letters", found["deadLetters"]),
        (
            "open incidents",
            f"{found['incidents']['open']} ({found['incidents']['acknowledged']} acknowledged)",
        ),
        ("active silences", found["silences"]["active"]),
        *((f"lane {lane['action']}", _lane(lane)) for lane in found["lanes"]),
    ]
    width = max(len(name) for name, _ in facts)
    click.echo("\n".join(f"{name.ljust(width)}  {value}" for name, value in facts))
    if found["failuresByFlow"]:
        rows = [
            (f["source"], f["flow_id"], f["flow_name"], f["failures"])
            for f in found["failuresByFlow"]
        ]
        click.echo("\n" + table(("SOURCE", "FLOW", "NAME", "FAILURES"), rows))
    if found["workers"]:
        workers = [
            (w["name"], w["state"], "yes" if w["beating"] else "NO", when(w["lastHeartbeat"]),
             w["currentJob"])
            for w in found["workers"]
        ]  # fmt: skip
        click.echo("\n" + table(("WORKER", "STATE", "BEATING", "HEARTBEAT", "JOB"), workers))


# incidents --------------------------------------------------------------------------------------


@click.group(cls=Group, name="incidents")
def incidents_group() -> None:
    """Open incidents: a flow's failures notified by a route's action, until it succeeds."""


@incidents_group.command("list")
@output_option
@redis_option
def incidents_list(output: Output, redis: Target) -> None:
    """Open incidents, the most recently notified first."""
    found = incidents.every(redis.connect())
    if not found:
        click.echo(redis.empty("no open incidents"), err=True)
    elif output == "json":
        lines(i.to_json() for i in found)
    else:
        now = time.time()
        rows = [
            (i.id, i.source, i.flow_id, i.flow_name, i.route, i.action,
             duration(now - i.opened_at), duration(now - i.last_notified_at), i.failures,
             f"acknowledged by {i.acked_by}" if i.acked_at is not None else "open")
            for i in found
        ]  # fmt: skip
        headers = ("ID", "SOURCE", "FLOW", "NAME", "ROUTE", "ACTION", "SINCE", "NOTIFIED",
                   "FAILURES", "STATE")  # fmt: skip
        click.echo(table(headers, rows))


@incidents_group.command("ack")
@click.argument("incident_id", metavar="ID")
@click.option("--by", default=None, help="Who acknowledges (default: your user name).")
@redis_option
def incidents_ack(incident_id: str, by: str | None, redis: Target) -> None:
    """Acknowledge an incident: its flow's failures notify no repeats until it succeeds."""
    who = by or _user()
    if not incidents.acknowledge(redis.connect(), incident_id, who, time.time()):
        fail(f"no open incident {incident_id!r} in Redis at {redis.where}")
    click.echo(f"acknowledged {incident_id} by {who}")


@incidents_group.command("resolve")
@click.argument("incident_id", metavar="ID")
@redis_option
def incidents_resolve(incident_id: str, redis: Target) -> None:
    """Forget an incident without notifying: the flow's next failure is notified again."""
    if not incidents.resolve(redis.connect(), incident_id):
        fail(f"no open incident {incident_id!r} in Redis at {redis.where}")
    click.echo(f"resolved {incident_id}")


# deliveries -------------------------------------------------------------------------------------


@click.group(cls=Group)
def deliveries() -> None:
    """Delivery attempts per action, and dead letters replayed in bulk."""


@deliveries.command("list")
@click.argument("action", required=False)
@click.option("--outcome", type=click.Choice(OUTCOMES), help="Only attempts of this outcome.")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@output_option
@redis_option
def deliveries_list(
    action: str | None, outcome: str | None, limit: int, output: Output, redis: Target
) -> None:
    """The latest attempts of ACTION, newest first (without ACTION: the actions that have
    some)."""
    conn = redis.connect()
    if action is None:
        names = activity.actions(conn)
        if not names:
            click.echo(redis.empty("no delivery attempts"), err=True)
        else:
            click.echo("\n".join(names))
        return
    found = [a for a in activity.attempts(conn, action) if outcome in (None, a.get("outcome"))]
    if not found:
        click.echo(redis.empty(f"no attempts of {action!r}"), err=True)
    elif output == "json":
        lines(found[:limit])
    else:
        rows = [
            (when(a.get("at")), a.get("ref"), a.get("route"), a.get("outcome"), a.get("status"),
             duration(a["duration_ms"] / 1000) if isinstance(a.get("duration_ms"), int) else "",
             a.get("attempt"), a.get("error") or a.get("reason"))
            for a in found[:limit]
        ]  # fmt: skip
        headers = ("AT", "REF", "ROUTE", "OUTCOME", "STATUS", "LATENCY", "ATTEMPT", "REASON")
        click.echo(table(headers, rows))


@deliveries.command("replay-dead")
@click.option("--action", help="Only the dead letters of this action.")
@click.option("--reason", help="Only those whose reason contains this (case aside).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask: needed when not on a terminal.")
@redis_option
def deliveries_replay_dead(
    action: str | None, reason: str | None, yes: bool, redis: Target
) -> None:
    """Replay dead letters in bulk (all, by action, by reason), after saying how many."""
    conn = redis.connect()
    found = deadletters.matching(conn, action=action, reason=reason)
    if not found:
        click.echo(redis.empty("no dead letters match"), err=True)
        return
    if not yes:
        question = f"Replay {len(found)} dead letter(s) in Redis at {redis.where}?"
        if not sys.stdin.isatty():
            usage(f"{question} Not on a terminal to ask: confirm with --yes")
        if not click.confirm(question, default=False, err=True):
            fail("nothing replayed")
    replayed, gone = deadletters.replay_matching(conn, action=action, reason=reason)
    click.echo(f"requeued {replayed} job(s)" + (f"; {gone} had gone meanwhile" if gone else ""))


# sessions ---------------------------------------------------------------------------------------


@click.group(cls=Group, name="sessions")
def sessions_group() -> None:
    """The admin pages' sessions."""


@sessions_group.command("end-all")
@redis_option
def sessions_end_all(redis: Target) -> None:
    """End every session of the admin pages: everyone signs in again."""
    ended = sessions.end_all(redis.connect(), datetime.now(UTC).timestamp())
    click.echo(f"ended {ended} session(s)")


COMMANDS = (overview, incidents_group, deliveries, sessions_group)


def _lane(lane: dict[str, Any]) -> str:
    """An action's lane in a line: what waits, the circuit, a pause."""
    told = f"{lane['backlog']} waiting"
    if lane["backlog"]:
        told += f" (oldest {duration(lane['oldestSeconds'])})"
    told += f", circuit {lane['circuit'].replace('_', ' ')}"
    if lane["pausedForSeconds"] is not None:
        told += f", paused {duration(lane['pausedForSeconds'])} more"
    return told
