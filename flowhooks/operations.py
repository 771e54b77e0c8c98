"""Operator commands: ``routes test``, ``silence``, ``dlq``."""

import getpass
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import yaml
from redis import Redis
from redis.exceptions import RedisError
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.queue import Queue
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from config import keys
from config.durations import parse_duration
from config.schema import Config
from flowhooks import routestest
from flowhooks.common import config_or_exit, fail, redis_client, settings_or_exit
from workers import silences
from workers.delivery import Incident, load_incidents
from workers.silences import Silence

# routes test -------------------------------------------------------------------------------


@click.group()
def routes() -> None:
    """Try the routing rules."""


def _state(source: str, flow_id: str | None) -> tuple[list[Silence], list[Incident], str]:
    """Silences and open incidents from Redis, when it answers; a routes test works without."""
    try:
        conn = Redis.from_url(
            settings_or_exit().redis_url.get_secret_value(), socket_connect_timeout=1
        )
        return silences.every(conn), load_incidents(conn, source, flow_id), ""
    except RedisError:
        return [], [], "(Redis unreachable: silences and open incidents not considered)"


def _one(
    config: Config, event_text: str, source: str | None, at: datetime, use_state: bool
) -> routestest.Report:
    try:
        event = routestest.load_event(event_text, source, at)
    except ValueError as exc:
        fail(str(exc))
    found, incidents, note = (
        _state(event["source"], event.get("flow_id")) if use_state else ([], [], "")
    )
    if note:
        click.echo(note, err=True)
    return routestest.run(config, event, at=at, silences=found, incidents=incidents)


@routes.command("test")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None)
@click.option("--event", "event_file", type=click.Path(exists=True, path_type=Path))
@click.option("--source", default=None, help="The source a raw Etlworks body arrives on.")
@click.option("--at", "at_text", default=None, help="The instant to route at (ISO 8601).")
@click.option("--expect", default=None, help="Comma-separated actions that must fire.")
@click.option("--cases", "cases_file", type=click.Path(exists=True, path_type=Path))
@click.option("--no-state", is_flag=True, help="Ignore silences and incidents in Redis.")
def routes_test(  # noqa: PLR0917 (one parameter per option, as click passes them)
    config_path: Path | None,
    event_file: Path | None,
    source: str | None,
    at_text: str | None,
    expect: str | None,
    cases_file: Path | None,
    no_state: bool,
) -> None:
    """Show the routes an event matches, what fires, what is suppressed and why, and the
    rendered payloads. With --expect or --cases, exit 1 on a mismatch."""
    config = config_or_exit(config_path or settings_or_exit().config)
    try:
        at = routestest.parse_at(at_text)
    except ValueError:
        fail(f"--at {at_text!r} is not an ISO 8601 instant")
    if cases_file is not None:
        sys.exit(_cases(config, cases_file, source, at, not no_state))
    if event_file is None:
        fail("give --event FILE.json or --cases FILE.yaml")
    report = _one(config, event_file.read_text(), source, at, not no_state)
    click.echo(routestest.describe(report))
    if expect is not None:
        wanted = sorted(a for a in expect.split(",") if a)
        if report.firing != wanted:
            click.echo(f"MISMATCH: expected {wanted}, would fire {report.firing}", err=True)
            sys.exit(1)


def _cases(config: Config, path: Path, source: str | None, at: datetime, state: bool) -> int:
    """Run every case of a YAML list ``[{name, event: FILE | mapping, source, at, expect}]``."""
    failures = 0
    for i, case in enumerate(yaml.safe_load(path.read_text()) or []):
        name = case.get("name", f"case {i + 1}")
        event = case["event"]
        text = (path.parent / event).read_text() if isinstance(event, str) else json.dumps(event)
        when = routestest.parse_at(case["at"]) if "at" in case else at
        report = _one(config, text, case.get("source", source), when, state)
        wanted = sorted(case.get("expect") or [])
        ok = report.firing == wanted
        failures += not ok
        verdict = "ok  " if ok else "FAIL"
        click.echo(
            f"{verdict} {name}: fires {report.firing}" + ("" if ok else f", expected {wanted}")
        )
    return 1 if failures else 0


# silences ---------------------------------------------------------------------------------


@click.group()
def silence() -> None:
    """Suppress notifications for a while."""


def _show(s: Silence, now: datetime) -> str:
    state = "active" if s.active(now) else ("pending" if now < s.starts_at else "expired")
    until = s.ends_at.isoformat(timespec="seconds")
    return f"{s.id}  {state:<7} until {until}  {s.author}: {s.comment}  [{', '.join(s.matchers)}]"


@silence.command("add")
@click.option("--matcher", "matchers", multiple=True, required=True, help='e.g. kind="flow.failed"')
@click.option("--duration", required=True, help="e.g. 2h")
@click.option("--comment", required=True)
@click.option("--author", default=None, help="Default: the current user.")
def silence_add(matchers: tuple[str, ...], duration: str, comment: str, author: str | None) -> None:
    """Silence notifications of events matching every --matcher."""
    try:
        seconds = parse_duration(duration)
        made = silences.create(
            redis_client(),
            list(matchers),
            duration=seconds,
            author=author or getpass.getuser(),
            comment=comment,
            now=datetime.now(UTC),
        )
    except ValueError as exc:
        fail(str(exc))
    except RedisError as exc:
        fail(f"cannot store the silence: {type(exc).__name__}")
    click.echo(_show(made, datetime.now(UTC)))


@silence.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include expired silences.")
def silence_list(show_all: bool) -> None:
    now = datetime.now(UTC)
    try:
        found = silences.every(redis_client())
    except RedisError as exc:
        fail(f"cannot read silences: {type(exc).__name__}")
    for s in found:
        if show_all or s.ends_at > now:
            click.echo(_show(s, now))


@silence.command("expire")
@click.argument("silence_id")
def silence_expire(silence_id: str) -> None:
    try:
        ended = silences.expire(redis_client(), silence_id, datetime.now(UTC))
    except RedisError as exc:
        fail(f"cannot expire the silence: {type(exc).__name__}")
    if ended is None:
        fail(f"no silence {silence_id!r}")
    click.echo(_show(ended, datetime.now(UTC)))


# dead letters -----------------------------------------------------------------------------


@click.group()
def dlq() -> None:
    """Deliveries and route jobs that failed for good (RQ's failed-job registry)."""


def _registry() -> FailedJobRegistry:
    queue = Queue(keys.QUEUE, connection=redis_client(), serializer=JSONSerializer)
    return FailedJobRegistry(queue=queue)


def _job_summary(job: Job) -> dict[str, Any]:
    args = job.args[0] if job.args else None
    what: dict[str, Any] = {"task": job.func_name}
    if isinstance(args, dict):
        what |= {k: args.get(k) for k in ("ref", "route", "action", "kind", "attempt")}
    elif isinstance(args, str):
        what["ref"] = args
    reason = (job.exc_info or "").strip().splitlines()
    return {
        "job": job.id,
        **what,
        "failed_at": job.ended_at.isoformat() if job.ended_at else None,
        "reason": reason[-1] if reason else "",
    }


@dlq.command("list")
def dlq_list() -> None:
    registry = _registry()
    for job_id in registry.get_job_ids():
        try:
            job = Job.fetch(job_id, connection=registry.connection, serializer=JSONSerializer)
        except NoSuchJobError:
            continue
        click.echo(json.dumps(_job_summary(job)))


@dlq.command("show")
@click.argument("job_id")
def dlq_show(job_id: str) -> None:
    registry = _registry()
    try:
        job = Job.fetch(job_id, connection=registry.connection, serializer=JSONSerializer)
    except NoSuchJobError:
        fail(f"no job {job_id!r}")
    shown = _job_summary(job) | {"args": job.args, "exc_info": job.exc_info}
    click.echo(json.dumps(shown, indent=2, default=str))


@dlq.command("replay")
@click.argument("job_id", required=False)
@click.option("--all", "replay_all", is_flag=True)
def dlq_replay(job_id: str | None, replay_all: bool) -> None:
    """Queue dead jobs again; deliveries that succeeded since are not redone."""
    registry = _registry()
    ids = registry.get_job_ids() if replay_all else [job_id] if job_id else []
    if not ids:
        fail("name a JOB or give --all")
    for each in ids:
        try:
            registry.requeue(each)
        except (InvalidJobOperation, NoSuchJobError):
            fail(f"{each} is not in the dead-letter registry")
        click.echo(f"requeued {each}")


@dlq.command("purge")
def dlq_purge() -> None:
    registry = _registry()
    ids = registry.get_job_ids()
    for each in ids:
        registry.remove(each, delete_job=True)
    click.echo(f"purged {len(ids)} job(s)")
