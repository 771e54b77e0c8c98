"""Operator commands: ``routes test``, ``silence``, ``dlq``."""

import functools
import getpass
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import ParamSpec

import click
import yaml
from redis import Redis
from redis.exceptions import RedisError
from rq.job import Job

from config import deadletters, silences
from config.connections import connect
from config.durations import parse_duration
from config.schema import Config
from config.silences import Silence
from flowhooks import routestest
from flowhooks.common import config_or_exit, fail, redis_client, settings_or_exit
from workers.delivery import Incident, load_state

P = ParamSpec("P")

# routes test -------------------------------------------------------------------------------


@click.group()
def routes() -> None:
    """Try the routing rules."""


def _state(source: str, flow_id: str | None) -> tuple[list[Silence], list[Incident], str]:
    """Silences and open incidents from Redis, when it answers; a routes test works without."""
    try:
        conn = connect(settings_or_exit(), socket_connect_timeout=1)
        return *load_state(conn, source, flow_id), ""
    except RedisError:
        return [], [], "(Redis unreachable: silences and open incidents not considered)"


def _one(
    config: Config, event_text: str, source: str | None, at: datetime, use_state: bool
) -> routestest.Report:
    """Raise ``ValueError`` for an event that cannot be read."""
    event = routestest.load_event(event_text, source, at, config.sources)
    found, incidents, note = (
        _state(event["source"], event.get("flow_id")) if use_state else ([], [], "")
    )
    if note:
        click.echo(note, err=True)
    return routestest.run(config, event, at=at, silences=found, incidents=incidents)


def _read(path: Path) -> str:
    """Raise ``ValueError`` naming a file that cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror or exc}") from None


def _actions(expect: object) -> list[str]:
    """``a,b`` or ``[a, b]`` as a sorted list of action names."""
    items = expect.split(",") if isinstance(expect, str) else expect or []
    if not isinstance(items, list):
        raise ValueError("expect must be a list of action names or a string a,b")
    return sorted(str(a).strip() for a in items if str(a).strip())


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
    try:
        report = _one(config, _read(event_file), source, at, not no_state)
    except ValueError as exc:
        fail(str(exc))
    click.echo(routestest.describe(report))
    if expect is not None:
        wanted = _actions(expect)
        if report.firing != wanted:
            click.echo(f"MISMATCH: expected {wanted}, would fire {report.firing}", err=True)
            sys.exit(1)


def _cases(config: Config, path: Path, source: str | None, at: datetime, state: bool) -> int:
    """Run every case of a YAML list ``[{name, event: FILE | mapping, source, at, expect}]``;
    1 if any fails or cannot be run, each named in the output."""
    try:
        cases = yaml.safe_load(_read(path)) or []
    except (ValueError, yaml.YAMLError) as exc:
        fail(f"{path}: not a YAML list of cases: {exc}")
    if not isinstance(cases, list):
        fail(f"{path}: not a YAML list of cases")
    failures = 0
    for i, case in enumerate(cases):
        name = case.get("name", f"case {i + 1}") if isinstance(case, dict) else f"case {i + 1}"
        try:
            firing, wanted = _case(config, path, case, source=source, at=at, state=state)
        except (ValueError, KeyError) as exc:
            failures += 1
            reason = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            click.echo(f"FAIL {name}: cannot run: {reason}")
            continue
        ok = firing == wanted
        failures += not ok
        verdict = "ok  " if ok else "FAIL"
        click.echo(f"{verdict} {name}: fires {firing}" + ("" if ok else f", expected {wanted}"))
    click.echo(f"{len(cases) - failures} of {len(cases)} case(s) passed")
    return 1 if failures else 0


def _case(
    config: Config, path: Path, case: object, *, source: str | None, at: datetime, state: bool
) -> tuple[list[str], list[str]]:
    """What one case fires, and what it expects; raise ``ValueError`` or ``KeyError``."""
    if not isinstance(case, dict):
        raise ValueError("a case is a mapping {name, event, source, at, expect}")
    event = case["event"]
    text = _read(path.parent / event) if isinstance(event, str) else json.dumps(event, default=str)
    try:
        when = routestest.parse_at(str(case["at"])) if "at" in case else at
    except ValueError:
        raise ValueError(f"at {case['at']!r} is not an ISO 8601 instant") from None
    report = _one(config, text, case.get("source", source), when, state)
    return report.firing, _actions(case.get("expect"))


# silences ---------------------------------------------------------------------------------


@click.group()
def silence() -> None:
    """Suppress notifications for a while."""


def _show(s: Silence, now: datetime) -> str:
    state = s.state(now)
    until = s.ends_at.isoformat(timespec="seconds")
    return f"{s.id}  {state:<7} until {until}  {s.author}: {s.comment}  [{', '.join(s.matchers)}]"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a numeric user with no passwd entry, as in the image
        return f"uid {os.getuid()}"


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
            author=author or _user(),
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


def _dead(conn: Redis, job_id: str) -> Job:
    """The job ``job_id`` of the registry; exit 1 when it is not there."""
    try:
        return deadletters.dead(conn, job_id)
    except deadletters.Missing as exc:
        fail(str(exc))


def _redis_errors(command: Callable[P, None]) -> Callable[P, None]:
    """One line instead of a traceback when Redis cannot be reached."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except RedisError as exc:
            fail(f"cannot reach Redis: {type(exc).__name__}")

    return run


@dlq.command("list")
@_redis_errors
def dlq_list() -> None:
    """One JSON object a line: the job, what it delivers, when it failed and why."""
    conn = redis_client()
    for row in deadletters.summaries(conn, deadletters.ids(conn)):
        click.echo(json.dumps(row))


@dlq.command("show")
@click.argument("job_id")
@_redis_errors
def dlq_show(job_id: str) -> None:
    """A dead job in full, with its arguments and the error it failed with."""
    job = _dead(redis_client(), job_id)
    shown = deadletters.summary(job) | {"args": job.args, "exc_info": deadletters.error(job)}
    click.echo(json.dumps(shown, indent=2, default=str))


@dlq.command("replay")
@click.argument("job_id", required=False)
@click.option("--all", "replay_all", is_flag=True)
@_redis_errors
def dlq_replay(job_id: str | None, replay_all: bool) -> None:
    """Queue dead jobs again; deliveries that succeeded since are not redone."""
    if bool(job_id) == replay_all:
        fail("name a JOB or give --all, not both" if replay_all else "name a JOB or give --all")
    conn = redis_client()
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
        click.echo("the dead-letter registry is empty")
    if missing:
        fail(f"no longer in the dead-letter registry: {', '.join(missing)}")


@dlq.command("purge")
@_redis_errors
def dlq_purge() -> None:
    """Delete every dead job."""
    click.echo(f"purged {deadletters.purge(redis_client())} job(s)")
