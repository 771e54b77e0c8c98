"""``flowhooks etlworks``: register a source's webhook in its Etlworks instance through the API
(``subscribe``), and say how that webhook and the reconciling of its runs are doing
(``status``).

The webhook of source S is the registration named ``flowhooks-S``: ``subscribe`` creates it, or
updates it in place, so running it twice leaves one. Its secret is the source's first ``hmac``
secret, read from the config's reference; it is sent to Etlworks and never shown (``***`` in
``--dry-run``). Exit codes as every command's: 1 when Etlworks or Redis cannot be used, or (for
``status``) a webhook is not there, disabled, or points elsewhere; 2 for a wrong command line
or config.
"""

import asyncio
import sys
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import httpx

from config import keys
from config.etlworks import Instance
from config.schema import Config, Source
from config.secrets import Unresolved
from flowhooks.common import (
    Group,
    Target,
    config_option,
    config_or_exit,
    fail,
    redis_option,
    usage,
)
from flowhooks.output import Output, cell, lines, output_option, when
from workers.etlworks import reconcile
from workers.etlworks.client import EtlworksClient
from workers.sinks import DeliveryError

T = TypeVar("T")
OUTCOMES = ("FLOW_FAILED", "FLOW_SUCCESS", "FLOW_WARNING", "FLOW_CANCELED")
"""The events a webhook is subscribed to unless ``--events`` says otherwise: a run's end."""
MASK = "***"


@click.group(cls=Group)
def etlworks() -> None:
    """Connect Etlworks: register a source's webhook, see how it and reconciling are doing."""


@etlworks.command("subscribe")
@click.argument("source")
@click.option("--url", "public_url", required=True, help="The receiver's public base URL.")
@click.option(
    "--events",
    default=",".join(OUTCOMES),
    show_default=True,
    help="Comma-separated Etlworks events (Flow.Executed for every end).",
)
@click.option("--flows", help="Comma-separated flow ids or name patterns to send (default: all).")
@click.option("--exclude-flows", help="Comma-separated flow ids or name patterns not to send.")
@click.option("--dry-run", is_flag=True, help="Show the request (its secret masked), send none.")
@output_option
@config_option
def subscribe(  # noqa: PLR0917 (one parameter per option, as click passes them)
    source: str,
    public_url: str,
    events: str,
    flows: str | None,
    exclude_flows: str | None,
    dry_run: bool,
    output: Output,
    config_path: Path,
) -> None:
    """Create, or update in place, the webhook flowhooks-SOURCE in the source's Etlworks
    instance: it sends the runs' ends to URL/webhooks/SOURCE, signed with the source's secret."""
    if flows and exclude_flows:
        usage("give --flows or --exclude-flows, not both")
    if not public_url.startswith(("http://", "https://")):
        usage("--url must be an http:// or https:// URL")
    config = config_or_exit(config_path, secrets_of=("sources", source))
    name, instance = _instance(config, source, config_path)
    secret = _secret(config.sources[source], source)
    spec: dict[str, Any] = {
        "name": reconcile.webhook_name(source),
        "description": f"flowhooks source {source}: managed by `flowhooks etlworks subscribe`",
        "events": _items(events) or usage("--events names no event"),
        "url": f"{public_url.rstrip('/')}/webhooks/{source}",
        "method": "POST",
        "secret": secret,
        "flowIncludes": _items(flows),
        "flowExcludes": _items(exclude_flows),
        "enabled": True,
    }

    async def work(api: EtlworksClient) -> dict[str, Any]:
        found = reconcile.registration(await api.webhooks(), source)
        webhook_id = found.get("id") if found else None
        verb = "update" if found else "create"
        shown = {**spec, "secret": MASK}
        if dry_run:
            path = f"/v1/webhooks/{webhook_id}" if found else "/v1/webhooks"
            method = "PUT" if found else "POST"
            return {"done": f"would {verb}", "request": f"{method} {path}", "webhook": shown}
        saved = await api.save_webhook(spec, webhook_id if found else None)
        return {"done": f"{verb}d", "id": saved.get("id", webhook_id), "webhook": shown}

    answer = _call(instance, name, work)
    if output == "json":
        lines([{"instance": name, **answer}])
        return
    shown = answer["webhook"]
    head = f"{answer['done']} webhook {shown['name']} in Etlworks instance {name}"
    click.echo(head + (f" (id {answer['id']})" if answer.get("id") is not None else ""))
    if "request" in answer:
        click.echo(f"  request: {answer['request']}")
    for key in ("url", "method", "events", "flowIncludes", "flowExcludes", "enabled", "secret"):
        click.echo(f"  {key}: {cell(shown[key]) or '-'}")


STATUS_FIELDS = (
    ("webhook", "webhook"),
    ("registration", "registration"),
    ("url", "url"),
    ("events", "events"),
    ("flows", "flows"),
    ("last_webhook_at", "last webhook"),
    ("runs_ended_since", "runs ended since"),
    ("reconcile", "reconcile"),
    ("reconciled", "reconciled"),
    ("missing", "webhooks missing"),
    ("problem", "problem"),
)


@etlworks.command("status")
@click.argument("source", required=False)
@click.option("--url", "public_url", help="The receiver's public base URL the webhook must call.")
@output_option
@config_option
@redis_option
def status(
    source: str | None, public_url: str | None, output: Output, config_path: Path, redis: Target
) -> None:
    """Whether each source's webhook (or SOURCE's) is in Etlworks, enabled, pointing at URL,
    and subscribed to what; when its last webhook arrived, how many runs ended since, and
    how many runs reconciling routed. Exit 1 if a webhook is not as it should be."""
    config = config_or_exit(config_path, secrets_of=("etlworks",))
    if source is not None and source not in config.sources:
        usage(f"no source {source!r} in the config (known: {', '.join(config.sources)})")
    names = [source] if source else [s for s, src in config.sources.items() if src.etlworks]
    if not names:
        usage("no source of the config names an Etlworks instance (etlworks: under the source)")
    conn = redis.connect()
    reports = [_status(config, s, public_url, conn, config_path) for s in names]
    if output == "json":
        lines(reports)
    else:
        for i, report in enumerate(reports):
            click.echo(("\n" if i else "") + f"{report['source']} (Etlworks {report['instance']})")
            for key, label in STATUS_FIELDS:
                click.echo(f"  {label + ':':<18} {_shown(key, report.get(key))}")
    if any(r["problem"] for r in reports):
        sys.exit(1)


def _status(
    config: Config, source: str, public_url: str | None, conn: Any, config_path: Path
) -> dict[str, Any]:
    name, instance = _instance(config, source, config_path)
    state = {keys.text(k): keys.text(v) for k, v in conn.hgetall(keys.webhooks(source)).items()}
    arrived = reconcile.last_webhook(conn, source, 0)
    since_ms = int(arrived) if arrived is not None else None

    async def work(api: EtlworksClient) -> tuple[Mapping[str, Any] | None, int | None]:
        hook = reconcile.registration(await api.webhooks(), source)
        if since_ms is None:
            return hook, None
        flows = {str(f.get("id")): f for f in await api.flows()}
        subscription = reconcile.Subscription.of(hook) if hook else reconcile.Subscription()
        runs, _ = await reconcile.history(api, since_ms + 1)
        wanted = [
            r
            for r in runs
            if r.finished
            and subscription.wants(
                r.flow_id,
                str(r.raw.get("flowName") or flows.get(r.flow_id, {}).get("name")),
                r.status,
            )
        ]
        return hook, len(wanted)

    hook, ended = _call(instance, name, work)
    expected = f"{public_url.rstrip('/')}/webhooks/{source}" if public_url else None
    state_name = reconcile.registration_state(hook)
    problem = None
    if state_name != "enabled":
        problem = f"webhook {reconcile.webhook_name(source)} is {state_name}"
    elif expected is not None and hook and hook.get("url") != expected:
        problem = f"webhook calls {hook.get('url')}, not {expected}"
    settings = instance.reconciling
    return {
        "source": source,
        "instance": name,
        "webhook": reconcile.webhook_name(source),
        "registration": state_name + (f" (id {hook.get('id')})" if hook else ""),
        "url": hook.get("url") if hook else None,
        "events": list(hook.get("events") or []) if hook else None,
        "flows": _flows(hook) if hook else None,
        "last_webhook_at": _time(arrived),
        "runs_ended_since": ended,
        "reconcile": f"every {int(settings.interval)}s" if settings else "off",
        "reconciled": int(state.get("reconciled") or 0),
        "missing": bool(state.get("missing")),
        "problem": problem,
    }


def _instance(config: Config, source: str, config_path: Path) -> tuple[str, Instance]:
    if source not in config.sources:
        usage(f"no source {source!r} in the config (known: {', '.join(config.sources)})")
    name = config.sources[source].etlworks
    if name is None:
        usage(f"source {source!r} names no Etlworks instance (etlworks: under the source)")
    instance = config.etlworks[name]
    if isinstance(instance.api_key, Unresolved):
        click.echo(f"{config_path}: etlworks.{name}.api_key: {instance.api_key.reason}", err=True)
        sys.exit(2)
    return name, instance


def _secret(source: Source, name: str) -> str:
    """The source's current HMAC secret: what Etlworks signs its webhooks with."""
    for step in source.verify:
        if step.hmac is not None:
            return step.hmac.secrets[0].get_secret_value()
    usage(f"source {name!r} has no hmac check: Etlworks signs its webhooks with an HMAC secret")


def _call(instance: Instance, name: str, work: Callable[[EtlworksClient], Awaitable[T]]) -> T:
    async def main() -> T:
        async with httpx.AsyncClient(follow_redirects=False) as http:
            api = EtlworksClient(
                instance.url, instance.api_key, client=http, timeout=instance.timeout
            )
            return await work(api)

    try:
        return asyncio.run(main())
    except DeliveryError as exc:
        fail(f"Etlworks instance {name} ({instance.url}): {exc}")


def _items(text: str | None) -> list[str]:
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def _flows(hook: Mapping[str, Any]) -> str:
    includes, excludes = hook.get("flowIncludes") or [], hook.get("flowExcludes") or []
    shown = ", ".join(map(str, includes)) if includes else "all"
    return shown + (f" except {', '.join(map(str, excludes))}" if excludes else "")


def _time(ms: float | None) -> str | None:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat() if ms is not None else None


def _shown(key: str, value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return when(value) if key == "last_webhook_at" else cell(value)
