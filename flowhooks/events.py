"""``flowhooks events``: list, show, replay and tail the stored events, through the code the
admin API uses (:mod:`config.eventlog`, :mod:`config.routejobs`)."""

import contextlib
import itertools
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar, get_args

import click
from redis import Redis

from config import eventlog, routejobs
from config.eventlog import Filters
from config.events import Kind, Status
from flowhooks import eventview, params
from flowhooks.common import Group, Target, fail, redis_option, usage
from flowhooks.output import Output, cell, document, lines, output_option, when
from flowhooks.tail import Follower, Seen
from receiver.jobs import ROUTE_RETRY

F = TypeVar("F", bound=Callable[..., Any])
POLL = 0.5
"""Seconds between two polls of ``events tail``."""


@click.group(cls=Group)
def events() -> None:
    """Read, replay and follow the stored events."""


def _label_filters(command: F) -> F:
    """``--source --kind --flow-id --status``, which ``list`` and ``tail`` share."""
    for option in reversed(
        [
            click.option("--source", help="Only events of this source."),
            click.option(
                "--kind",
                type=click.Choice(get_args(Kind)),
                metavar="KIND",
                help=f"Only this kind: {', '.join(get_args(Kind))}.",
            ),
            click.option("--flow-id", help="Only events about this flow."),
            click.option(
                "--status",
                type=click.Choice(get_args(Status)),
                metavar="STATUS",
                help=f"Only this status: {', '.join(get_args(Status))}.",
            ),
        ]
    ):
        command = option(command)
    return command


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


@events.command("list")
@_label_filters
@params.time_option("--since", ago=True, help="Received at or after: a time, or 2h ago.")
@params.time_option("--until", ago=True, help="Received at or before.")
@click.option(
    "--text", help="Only events whose id, flow name, flow id or error contains it (case aside)."
)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@output_option
@redis_option
def events_list(  # noqa: PLR0917 (one parameter per option, as click passes them)
    source: str | None,
    kind: str | None,
    flow_id: str | None,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
    text: str | None,
    limit: int,
    output: Output,
    redis: Target,
) -> None:
    """The newest events first."""
    if since is not None and until is not None and since > until:
        usage("--since is after --until")
    filters = Filters(source, kind, flow_id, status, _ms(since), _ms(until))
    conn = redis.connect()
    if text:
        found = list(itertools.islice(eventlog.matching(conn, filters, text), limit + 1))
        total = len(found)  # one more than shown says there are more
        found = found[:limit]
    else:
        total, found = eventlog.search(conn, filters, limit=limit)
    if not found:
        narrowed = filters != Filters() or bool(text)
        click.echo(redis.empty("no events" + (" match" if narrowed else "")), err=True)
        return
    if output == "json":
        lines(found)
    else:
        click.echo(eventview.listing(found))
    if total > len(found):
        told = f"the first {len(found)}" if text else f"{len(found)} of {total}"
        click.echo(f"({told}: --limit shows more)", err=True)


def _one(conn: Redis, event_id: str, source: str | None) -> eventlog.StoredEvent:
    """The stored event ``event_id`` (of ``source``); exit 1 when there is none, 2 when the
    id names events of several sources."""
    refs = eventlog.find(conn, event_id, source)
    if len(refs) > 1:
        usage(f"{len(refs)} sources have an event {event_id!r}: name one with --source")
    stored = eventlog.load(conn, refs[0]) if refs else None
    if stored is None:
        fail(f"no stored event with id {event_id!r}")
    return stored


@events.command("show")
@click.argument("event_id", metavar="ID")
@click.option("--source", help="The event's source, when several have an event of this id.")
@output_option
@redis_option
def events_show(event_id: str, source: str | None, output: Output, redis: Target) -> None:
    """An event and its timeline: how it was verified, routed and delivered, and what it
    started. ID is the event's id, or SOURCE:ID."""
    stored = _one(redis.connect(), event_id, source)
    if output == "json":
        document({"event": stored.event, "timeline": stored.timeline})
    else:
        click.echo(eventview.story(stored.event, stored.timeline))


@events.command("replay")
@click.argument("event_id", metavar="ID")
@click.option("--source", help="The event's source, when several have an event of this id.")
@click.option("--force", is_flag=True, help="Send again what was delivered already.")
@redis_option
def events_replay(event_id: str, source: str | None, force: bool, redis: Target) -> None:
    """Route an event again, with the rules the workers run now. Deliveries that succeeded
    are not sent again unless --force; silences and repeat intervals still apply."""
    conn = redis.connect()
    stored = _one(conn, event_id, source)
    settings = redis.settings
    try:
        done = routejobs.replay(
            conn,
            stored,
            force=force,
            failure_ttl=settings.event_retention,
            retry=ROUTE_RETRY,
        )
    except routejobs.Busy:
        fail(f"{stored.ref} is waiting for a worker already: its route job is queued or running")
    click.echo(f"replaying {stored.ref}: route job {done.job_id} queued")
    if done.forgotten:
        click.echo(
            f"forgot that {len(done.forgotten)} delivery(ies) succeeded: they are sent again "
            "unless a silence, a time interval or a repeat interval holds them back"
        )


@events.command("tail")
@_label_filters
@params.time_option("--since", ago=True, help="Start from this time (default: now).")
@output_option
@redis_option
def events_tail(  # noqa: PLR0917 (one parameter per option, as click passes them)
    source: str | None,
    kind: str | None,
    flow_id: str | None,
    status: str | None,
    since: datetime | None,
    output: Output,
    redis: Target,
) -> None:
    """Follow new events and their timelines (routing, deliveries, retries) until Ctrl-C."""
    start = int(time.time() * 1000) if since is None else int(since.timestamp() * 1000)
    follower = Follower(redis.connect(), Filters(source, kind, flow_id, status), start)
    click.echo(f"following events in Redis at {redis.where}; Ctrl-C stops", err=True)
    show = _json_line if output == "json" else _text_line
    try:
        while True:
            for seen in follower.poll():
                show(seen)
            time.sleep(POLL)
    except KeyboardInterrupt:
        return
    except BrokenPipeError:  # `| head`: the reader has seen enough
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _text_line(seen: Seen) -> None:
    if seen.event is not None:
        event = seen.event
        stage, at = "event", event.get("received_at")
        detail = " ".join(
            cell(v) for v in (event.get("kind"), event.get("status"), _flow(event)) if v
        )
    else:
        assert seen.entry is not None
        stage, at = str(seen.entry.get("stage")), seen.entry.get("at")
        detail = eventview.detail(seen.entry)
    click.echo(f"{when(at)}  {cell(seen.ref)}  {cell(stage):<10} {detail}")


def _flow(event: dict[str, Any]) -> str:
    if not event.get("flow_id"):
        return ""
    return f"flow {event['flow_id']}" + (f" {event['flow_name']}" if event.get("flow_name") else "")


def _json_line(seen: Seen) -> None:
    if seen.event is not None:
        lines([{"ref": seen.ref, "event": seen.event}])
    else:
        lines([{"ref": seen.ref, "entry": seen.entry}])
