"""``flowhooks routes``: the routing tree as the workers see it (``show``), and what it does with
an event (``test``), through the code the workers run (:func:`workers.routing.expand`,
:func:`workers.routing.match`, :func:`workers.delivery.plan`)."""

import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import yaml
from redis.exceptions import RedisError

from config.inhibit import Inhibitor
from config.loader import NO_SECRETS
from config.schema import Config
from config.silences import Silence
from flowhooks import params, routestest
from flowhooks.common import Group, Target, config_option, config_or_exit, fail, redis_option, usage
from flowhooks.output import Output, document, duration, lines, output_option
from workers import inhibition
from workers.delivery import Incident, incident_scope, load_state
from workers.routing import Match, Node, expand


@click.group(cls=Group)
def routes() -> None:
    """Show and try the routing rules."""


# routes show ------------------------------------------------------------------------------------


def _settings(match: Match) -> dict[str, Any]:
    return {
        "actions": list(match.actions),
        "resolve": match.resolve,
        "repeat_interval": match.repeat_interval,
        "group_by": list(match.group_by),
        "group_wait": match.group_wait,
        "group_interval": match.group_interval,
        "mute_time_intervals": list(match.mute_time_intervals),
        "active_time_intervals": list(match.active_time_intervals),
        "confirm": match.confirm,
    }


def _tree(node: Node) -> dict[str, Any]:
    return {
        "route": node.settings.path,
        "path": node.settings.location,
        "matchers": [str(m) for m in node.route.matchers],
        "continue": node.route.continue_,
        **_settings(node.settings),
        "routes": [_tree(child) for child in node.children],
    }


def _line(node: Node) -> str:
    """One route as ``amtool config routes`` shows it: name, matchers, continue, and the
    settings it routes with, inherited ones included (only those in use)."""
    match = node.settings
    parts = [match.path if match.path == match.location else f"{match.path} ({match.location})"]
    if node.route.matchers:
        parts.append("{" + ", ".join(str(m) for m in node.route.matchers) + "}")
    if node.route.continue_:
        parts.append("continue")
    parts.append("actions: " + (", ".join(match.actions) or "(none)"))
    parts.append(f"repeat_interval: {duration(match.repeat_interval)}")
    if match.resolve:
        parts.append("resolve")
    if match.group_by:
        parts.append(f"group_by: {', '.join(match.group_by)}")
        parts.append(f"group_wait: {duration(match.group_wait)}")
        parts.append(f"group_interval: {duration(match.group_interval)}")
    if match.mute_time_intervals:
        parts.append(f"mute_time_intervals: {', '.join(match.mute_time_intervals)}")
    if match.active_time_intervals:
        parts.append(f"active_time_intervals: {', '.join(match.active_time_intervals)}")
    if match.confirm:
        parts.append("confirm")
    return "  ".join(parts)


def _draw(node: Node, prefix: str = "") -> list[str]:
    """The children of ``node`` as a tree, each below its parent."""
    drawn = []
    for i, child in enumerate(node.children):
        last = i == len(node.children) - 1
        drawn.append(f"{prefix}{'└── ' if last else '├── '}{_line(child)}")
        drawn.extend(_draw(child, prefix + ("    " if last else "│   ")))
    return drawn


@routes.command("show")
@config_option
@output_option
def routes_show(config_path: Path, output: Output) -> None:
    """The routing tree: each route's name, matchers and the settings it routes with, those it
    inherits included. Children are tried in order; the first that matches wins unless it
    says continue."""
    root = expand(config_or_exit(config_path, secrets_of=NO_SECRETS).routes)
    if output == "json":
        document(_tree(root))
    else:
        click.echo("\n".join([_line(root), *_draw(root)]))


# routes test ------------------------------------------------------------------------------------


def _state(
    redis: Target, source: str, scope: str | None
) -> tuple[list[Silence], list[Incident], list[Inhibitor], str]:
    """Silences, open incidents and those that may inhibit, from Redis, when it answers; a
    routes test works without."""
    try:
        conn = redis.connect(socket_connect_timeout=1)
        found, incidents = load_state(conn, source, scope)
        return found, incidents, inhibition.load(conn, time.time()), ""
    except RedisError:
        note = f"(Redis at {redis.where} unreachable: silences and open incidents not considered)"
        return [], [], [], note


def _report(
    config: Config, event: dict[str, Any], at: datetime, redis: Target | None
) -> routestest.Report:
    scope = incident_scope(event) or event.get("flow_id")
    found, incidents, inhibitors, note = (
        _state(redis, event["source"], scope) if redis else ([], [], [], "")
    )
    if note:
        click.echo(note, err=True)
    return routestest.run(
        config, event, at=at, silences=found, incidents=incidents, inhibitors=inhibitors
    )


def _from_file(
    config: Config, event_text: str, source: str | None, at: datetime, redis: Target | None
) -> routestest.Report:
    """Raise ``ValueError`` for an event that cannot be read."""
    event = routestest.load_event(event_text, source, at, config.sources)
    return _report(config, event, at, redis)


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


FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@routes.command("test")
@click.argument("labels", nargs=-1, callback=params.labels, metavar="LABEL=VALUE...")
@click.option(
    "--event",
    "event_file",
    type=FILE,
    help="A raw Etlworks body (with --source), or an event as `events show -o json` prints it.",
)
@click.option("--source", help="The source a raw body arrives on, or the event's source.")
@params.time_option("--at", ago=False, help="Route as at this time (default: now).")
@click.option(
    "--expect", metavar="A,B", help="The actions that must fire, and only they: else exit 1."
)
@click.option(
    "--cases",
    "cases_file",
    type=FILE,
    help="A YAML list of {name, event, source, at, expect} to run: exit 1 if one fails.",
)
@click.option("--no-state", is_flag=True, help="Ignore silences and incidents in Redis.")
@config_option
@output_option
@redis_option
def routes_test(  # noqa: PLR0917 (one parameter per option, as click passes them)
    labels: tuple[tuple[str, str], ...],
    event_file: Path | None,
    source: str | None,
    at: datetime | None,
    expect: str | None,
    cases_file: Path | None,
    no_state: bool,
    config_path: Path,
    output: Output,
    redis: Target,
) -> None:
    """What the rules do with an event: the routes it matches, the deliveries, what is
    suppressed and why (silence, time interval, repeat interval, grouping), and each rendered
    payload. Give the event's LABELS (kind=flow.failed flow_id=7), --event FILE or --cases
    FILE."""
    config = config_or_exit(config_path, secrets_of=NO_SECRETS)
    if sum(map(bool, (labels, event_file, cases_file))) != 1:
        usage("give the event's labels (kind=flow.failed flow_id=7), --event FILE or --cases FILE")
    when = at or datetime.now().astimezone()
    state = None if no_state else redis
    if cases_file is not None:
        sys.exit(_cases(config, cases_file, source=source, at=when, redis=state, output=output))
    try:
        if event_file is not None:
            report = _from_file(config, _read(event_file), source, when, state)
        else:
            given = (
                [*labels, ("source", source)] if source and "source" not in dict(labels) else labels
            )
            report = _report(config, routestest.labelled(given, when), when, state)
    except ValueError as exc:
        usage(str(exc))
    if output == "json":
        document(routestest.document(report))
    else:
        click.echo(routestest.describe(report))
    if expect is not None:
        wanted = _actions(expect)
        if report.firing != wanted:
            fail(f"MISMATCH: expected {wanted}, would fire {report.firing}")


def _cases(
    config: Config,
    path: Path,
    *,
    source: str | None,
    at: datetime,
    redis: Target | None,
    output: Output,
) -> int:
    """Run every case of a YAML list ``[{name, event: FILE | mapping, source, at, expect}]``;
    1 if any fails or cannot be run, each named in the output."""
    try:
        cases = yaml.safe_load(_read(path)) or []
    except (ValueError, yaml.YAMLError) as exc:
        usage(f"{path}: not a YAML list of cases: {exc}")
    if not isinstance(cases, list):
        usage(f"{path}: not a YAML list of cases")
    failures = 0
    for i, case in enumerate(cases):
        name = case.get("name", f"case {i + 1}") if isinstance(case, dict) else f"case {i + 1}"
        result: dict[str, Any] = {"name": name}
        try:
            firing, wanted = _case(config, path, case, source=source, at=at, redis=redis)
        except (ValueError, KeyError) as exc:
            reason = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            result |= {"ok": False, "error": f"cannot run: {reason}"}
        else:
            result |= {"ok": firing == wanted, "fires": firing, "expected": wanted}
        failures += not result["ok"]
        if output == "json":
            lines([result])
        else:
            click.echo(_verdict(result))
    summary = f"{len(cases) - failures} of {len(cases)} case(s) passed"
    click.echo(summary, err=output == "json")
    return 1 if failures else 0


def _verdict(result: dict[str, Any]) -> str:
    name = result["name"]
    if "error" in result:
        return f"FAIL {name}: {result['error']}"
    if result["ok"]:
        return f"ok   {name}: fires {result['fires']}"
    return f"FAIL {name}: fires {result['fires']}, expected {result['expected']}"


def _case(
    config: Config,
    path: Path,
    case: object,
    *,
    source: str | None,
    at: datetime,
    redis: Target | None,
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
    report = _from_file(config, text, case.get("source", source), when, redis)
    return report.firing, _actions(case.get("expect"))
