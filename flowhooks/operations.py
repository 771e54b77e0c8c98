"""Operator commands: ``silence`` and ``dlq``, through the code the admin API uses
(:mod:`config.silences`, :mod:`config.deadletters`)."""

import getpass
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import click
from redis import Redis
from rq.job import Job

from config import deadletters, eventlog, silences
from config.base import MATCHABLE
from config.durations import parse_duration
from config.matchers import parse
from config.silences import Silence
from flowhooks import params
from flowhooks.common import Group, Target, fail, redis_option, usage
from flowhooks.output import Output, block, cell, document, lines, output_option, table, when
from receiver.admin.reports import silence as silence_document

# silences ---------------------------------------------------------------------------------------


@click.group(cls=Group)
def silence() -> None:
    """Hold back notifications of matching events for a while."""


SILENCE_HEADERS = ("ID", "STATE", "STARTS", "ENDS", "AUTHOR", "MATCHERS", "COMMENT")


def _show(found: Sequence[Silence], output: Output, now: datetime) -> None:
    if output == "json":
        lines(silence_document(s, now) for s in found)
        return
    rows = [
        (s.id, s.state(now), when(s.starts_at), when(s.ends_at), s.author, s.matchers, s.comment)
        for s in found
    ]
    click.echo(table(SILENCE_HEADERS, rows))


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a numeric user with no passwd entry, as in the image
        return f"uid {os.getuid()}"


@silence.command("add")
@click.argument("matchers", nargs=-1, metavar="MATCHER...")
@click.option("--matcher", "more", multiple=True, hidden=True)  # the form of earlier releases
@click.option(
    "--duration", metavar="DURATION", help="How long, from its start: 30m, 2h, 7d.  [default: 1h]"
)
@params.time_option("--end", ago=False, help="Instead of --duration: when it ends.")
@params.time_option("--start", ago=False, help="When it starts (default: now).")
@click.option("--comment", required=True, help="Why: the next person on call reads it.")
@click.option("--author", help="Who (default: the current user).")
@redis_option
def silence_add(  # noqa: PLR0917 (one parameter per option, as click passes them)
    matchers: tuple[str, ...],
    more: tuple[str, ...],
    duration: str | None,
    end: datetime | None,
    start: datetime | None,
    comment: str,
    author: str | None,
    redis: Target,
) -> None:
    """Silence the notifications of events that match every MATCHER (kind=flow.failed,
    'flow_name=~"staging-.*"', as routes write them)."""
    given = [*matchers, *more]
    if not given:
        usage("give at least one matcher, e.g. kind=flow.failed")
    try:  # kept as routes write them, whatever the quoting on the command line
        given = [str(parse(text, MATCHABLE)) for text in given]
    except ValueError as exc:
        usage(str(exc))
    if duration is not None and end is not None:
        usage("give --duration or --end, not both")
    try:
        seconds = None if end is not None else parse_duration(duration or "1h")
    except ValueError as exc:
        usage(f"--duration: {exc}")
    now = datetime.now(UTC)
    try:
        made = silences.create(
            redis.connect(),
            given,
            duration=seconds,
            ends_at=end,
            starts_at=start,
            author=author or _user(),
            comment=comment,
            now=now,
        )
    except ValueError as exc:
        usage(str(exc))
    _show([made], "text", now)


@silence.command("preview")
@click.argument("matchers", nargs=-1, required=True, metavar="MATCHER...")
@click.option(
    "--hours", default=24.0, show_default=True, type=click.FloatRange(min=0, min_open=True)
)
@output_option
@redis_option
def silence_preview(matchers: tuple[str, ...], hours: float, output: Output, redis: Target) -> None:
    """How many events of the last hours a silence of these MATCHERs would have matched (as
    the console's silence form says), before adding it."""
    try:
        given = [str(parse(text, MATCHABLE)) for text in matchers]
        count = silences.would_match(
            given, eventlog.received_within(redis.connect(), hours, time.time())
        )
    except ValueError as exc:
        usage(str(exc))
    if output == "json":
        document({"matchers": given, "hours": hours, "matching": count})
    else:
        click.echo(f"{count} events of the last {hours:g} h match {' '.join(given)}")


@silence.command("list")
@click.option("--all", "show_all", is_flag=True, help="With the silences that have ended.")
@output_option
@redis_option
def silence_list(show_all: bool, output: Output, redis: Target) -> None:
    """The silences that hold or will hold, soonest to start first."""
    _query([], show_all, output, redis)


@silence.command("query")
@click.argument("labels", nargs=-1, callback=params.labels, metavar="LABEL=VALUE...")
@click.option("--all", "show_all", is_flag=True, help="With the silences that have ended.")
@output_option
@redis_option
def silence_query(
    labels: tuple[tuple[str, str], ...], show_all: bool, output: Output, redis: Target
) -> None:
    """The silences that would hold back an event with these LABELS (kind=flow.failed
    flow_id=7): a silence's matchers on labels not given are not checked."""
    for name, _ in labels:
        if name not in MATCHABLE:
            usage(f"unknown label {name!r} (known: {', '.join(MATCHABLE)})")
    _query(list(labels), show_all, output, redis)


def _query(labels: list[tuple[str, str]], show_all: bool, output: Output, redis: Target) -> None:
    now = datetime.now(UTC)
    found = [
        s
        for s in silences.every(redis.connect())
        if (show_all or s.ends_at > now) and _could_match(s, labels)
    ]
    if not found:
        what = "no silences" + (" match" if labels else "") + ("" if show_all else " in force")
        click.echo(redis.empty(what), err=True)
        return
    _show(found, output, now)


def _could_match(found: Silence, labels: list[tuple[str, str]]) -> bool:
    """Whether every matcher of the silence on a label given matches it (``tags`` may be
    given several times: a matcher on tags sees them all)."""
    if not labels:
        return True
    given = {name for name, _ in labels}
    values = dict(labels)
    tags = [value for name, value in labels if name == "tags"]
    for text in found.matchers:
        matcher = parse(text, MATCHABLE)
        if matcher.label in given and not matcher.matches(values, tags):
            return False
    return True


@silence.command("expire")
@click.argument("silence_ids", nargs=-1, required=True, metavar="ID...")
@redis_option
def silence_expire(silence_ids: tuple[str, ...], redis: Target) -> None:
    """End silences now."""
    conn, now = redis.connect(), datetime.now(UTC)
    ended = [silences.expire(conn, sid, now) for sid in silence_ids]
    missing = [sid for sid, s in zip(silence_ids, ended, strict=True) if s is None]
    done = [s for s in ended if s is not None]
    if done:
        _show(done, "text", now)
    if missing:
        fail(f"no silence {', '.join(map(repr, missing))} in Redis at {redis.where}")


# dead letters -----------------------------------------------------------------------------------


@click.group(cls=Group)
def dlq() -> None:
    """Deliveries and route jobs that failed for good (RQ's failed-job registry)."""


DEAD_HEADERS = ("FAILED", "JOB", "TASK", "REF", "ROUTE", "ACTION", "ATTEMPT", "REASON")


def _task(name: object) -> str:
    """``deliver`` for ``workers.tasks.deliver``."""
    return str(name).rsplit(".", 1)[-1] if name else "?"


def _dead(conn: Redis, job_id: str) -> Job:
    """The job ``job_id`` of the registry; exit 1 when it is not there."""
    try:
        return deadletters.dead(conn, job_id)
    except deadletters.Missing as exc:
        fail(str(exc))


@dlq.command("list")
@output_option
@redis_option
def dlq_list(output: Output, redis: Target) -> None:
    """The dead jobs, oldest first: what each delivers (or routes), when it failed and why."""
    conn = redis.connect()
    found = deadletters.summaries(conn, deadletters.ids(conn))
    if not found:
        click.echo(redis.empty("no dead letters"), err=True)
    elif output == "json":
        lines(found)
    else:
        keys = ("job", "task", "ref", "route", "action", "attempt", "reason")
        rows = [[when(r["failed_at"]), *(r.get(k) for k in keys)] for r in found]
        for row in rows:
            row[2] = _task(row[2])
        click.echo(table(DEAD_HEADERS, rows))


@dlq.command("show")
@click.argument("job_id", metavar="JOB")
@output_option
@redis_option
def dlq_show(job_id: str, output: Output, redis: Target) -> None:
    """A dead job in full: what it delivers, its arguments, and the error it failed with."""
    job = _dead(redis.connect(), job_id)
    shown = deadletters.summary(job) | {"args": job.args, "exc_info": deadletters.error(job)}
    if output == "json":
        document(shown)
        return
    fields = [(k, shown.get(k)) for k in ("job", "task", "ref", "route", "action", "kind")]
    fields += [("attempt", shown.get("attempt")), ("failed", when(shown["failed_at"]))]
    fields += [("reason", shown.get("reason"))]
    fields = [(name, value) for name, value in fields if value is not None]
    width = max(len(name) for name, _ in fields)
    click.echo("\n".join(f"{name.ljust(width)}  {cell(value)}" for name, value in fields))
    click.echo("\nargs\n" + json.dumps(shown["args"], indent=2, default=str))
    if shown["exc_info"]:
        click.echo("\nerror\n" + block(shown["exc_info"].rstrip()))


@dlq.command("replay")
@click.argument("job_id", required=False, metavar="[JOB]")
@click.option("--all", "replay_all", is_flag=True, help="Every dead job.")
@redis_option
def dlq_replay(job_id: str | None, replay_all: bool, redis: Target) -> None:
    """Queue dead jobs again; deliveries that succeeded since are not redone."""
    if bool(job_id) == replay_all:
        usage("name a JOB or give --all, not both" if replay_all else "name a JOB or give --all")
    conn = redis.connect()
    ids = deadletters.ids(conn) if replay_all else [_dead(conn, str(job_id)).id]
    missing = []
    for each in ids:
        try:
            deadletters.replay(conn, each)
        except deadletters.Missing:
            missing.append(each)  # replayed or expired since it was listed
            continue
        click.echo(f"requeued {each}")
    if not ids:
        click.echo(redis.empty("no dead letters"), err=True)
    if missing:
        fail(f"no longer in the dead-letter registry: {', '.join(missing)}")


@dlq.command("purge")
@click.option("--yes", "-y", is_flag=True, help="Do not ask: needed when not on a terminal.")
@redis_option
def dlq_purge(yes: bool, redis: Target) -> None:
    """Delete every dead job, for good. Asks first on a terminal; elsewhere needs --yes."""
    conn = redis.connect()
    count = deadletters.count(conn)
    if count == 0:
        click.echo(redis.empty("no dead letters"), err=True)
        return
    if not yes:
        question = f"Delete {count} dead letter(s) in Redis at {redis.where} for good?"
        if not sys.stdin.isatty():
            usage(f"{question} Not on a terminal to ask: confirm with --yes")
        if not click.confirm(question, default=False, err=True):
            fail("nothing deleted")
    click.echo(f"purged {deadletters.purge(conn)} job(s)")
