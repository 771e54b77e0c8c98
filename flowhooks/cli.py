"""``flowhooks``: serve, worker, dev, check-config, events, send-test."""

import json
import logging
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import click
import httpx
import uvicorn
from redis.exceptions import RedisError

from config import eventlog
from config.loader import ConfigError, load
from flowhooks.common import (
    config_or_exit,
    fail,
    logging_or_exit,
    redis_client,
    settings_or_exit,
)
from flowhooks.devserver import run_dev
from flowhooks.operations import dlq, routes, silence
from flowhooks.sendtest import sample, sign
from receiver import reload
from receiver.app import create_app
from workers.etlworks.chains import loops
from workers.worker import run as run_worker


@click.group()
def main() -> None:
    """flowhooks: receive Etlworks webhooks, keep every one, route them."""


main.add_command(routes)
main.add_command(silence)
main.add_command(dlq)


@main.command()
@click.option("--host", default="0.0.0.0", show_default=True)  # noqa: S104 (a server)
@click.option("--port", default=8000, show_default=True)
def serve(host: str, port: int) -> None:
    """Run the receiver (the webhook endpoints, /healthz, /readyz, /metrics)."""
    settings = settings_or_exit()
    config = config_or_exit(settings.config)
    logging_or_exit(settings)
    # On SIGTERM uvicorn stops accepting, finishes the requests in flight, then raises the
    # signal again under the handler it found: this one makes that finished stop exit 0.
    signal.signal(signal.SIGTERM, _stopped)
    reload.install(checks=(loops,))  # SIGHUP reloads the config, as a change of the file does
    uvicorn.run(
        create_app(settings, config),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=30,
        server_header=False,
    )


def _stopped(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


@main.command()
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@click.option("--name", default=None, help="Worker name (default: RQ's).")
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus metrics here.")
def worker(burst: bool, name: str | None, metrics_port: int | None) -> None:
    """Run a worker on the flowhooks queue (with RQ's scheduler). SIGHUP reloads the config."""
    settings = settings_or_exit()
    config = config_or_exit(settings.config)
    logging_or_exit(settings)
    try:
        run_worker(settings, config, burst=burst, name=name, metrics_port=metrics_port)
    except RedisError as exc:  # RQ lets them out; one line says more than its traceback
        reason = f"{type(exc).__name__}: {exc}"
        extra = {"redis": settings.redis_location, "reason": reason}
        logging.getLogger("flowhooks.worker").error("worker stopped: Redis failed", extra=extra)
        sys.exit(1)


@main.command()
@click.option("--port", default=8000, show_default=True, help="Receiver port.")
@click.option("--data", default=".flowhooks", show_default=True, help="Where Redis keeps data.")
def dev(port: int, data: str) -> None:
    """Everything on one machine: an embedded Redis, the receiver and a worker."""
    sys.exit(run_dev(port=port, data=Path(data)))


@main.command("check-config")
@click.argument("path", required=False, type=click.Path(path_type=Path))
def check_config(path: Path | None) -> None:
    """Validate the config file (default: $FLOWHOOKS_CONFIG or flowhooks.yaml)."""
    path = path or settings_or_exit().config
    try:
        config = load(path, checks=(loops,))
    except ConfigError as exc:
        for line in exc.errors:
            click.echo(line, err=True)
        sys.exit(1)
    click.echo(f"{path}: ok ({len(config.sources)} source(s): {', '.join(config.sources)})")


@main.group()
def events() -> None:
    """Read stored events."""


@events.command("list")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
def events_list(limit: int, as_json: bool) -> None:
    """The newest events first."""
    try:
        rows = eventlog.recent(redis_client(), limit)
    except RedisError as exc:
        fail(f"cannot read events: {type(exc).__name__}: {exc}")
    for event in rows:
        if as_json:
            click.echo(json.dumps(event))
            continue
        flow = f"flow {event['flow_id']} {event.get('flow_name') or ''}" if event["flow_id"] else ""
        received = event["received_at"][:19].replace("T", " ")
        click.echo(f"{received}  {event['source']:<12} {event['kind']:<15} {event['id']}  {flow}")


@events.command("show")
@click.argument("event_id")
@click.option("--source", default=None, help="The source, when ids repeat across sources.")
def events_show(event_id: str, source: str | None) -> None:
    """An event and its timeline, as JSON."""
    conn = redis_client()
    try:
        refs = eventlog.find(conn, event_id, source)
        if not refs:
            fail(f"no stored event with id {event_id!r}")
        if len(refs) > 1:
            fail(f"{len(refs)} sources have an event {event_id!r}: name one with --source")
        stored = eventlog.load(conn, refs[0])
    except RedisError as exc:
        fail(f"cannot read events: {type(exc).__name__}: {exc}")
    if stored is None:
        fail(f"no stored event with id {event_id!r}")
    click.echo(json.dumps({"event": stored.event, "timeline": stored.timeline}, indent=2))


@main.command("send-test")
@click.option("--url", required=True, help="The receiver's base URL, e.g. http://127.0.0.1:8000")
@click.option("--source", required=True, help="A source of the config; its checks sign the event.")
@click.option("--event", "event_name", default="FLOW_FAILED", show_default=True)
@click.option("--flow-id", default=12345, show_default=True)
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None)
def send_test(
    url: str, source: str, event_name: str, flow_id: int, config_path: Path | None
) -> None:
    """Post a realistic, signed Etlworks event to a running receiver."""
    # Only the secrets of the source it signs for: the rest of the config need not be set here.
    config = config_or_exit(
        config_path or settings_or_exit().config, secrets_of=("sources", source)
    )
    if source not in config.sources:
        fail(f"no source {source!r} in the config (known: {', '.join(config.sources)})")
    now = time.time()
    body, headers = sample(event_name, flow_id, now)
    headers |= sign(config.sources[source].verify, body, now)
    endpoint = f"{url.rstrip('/')}/webhooks/{source}"
    try:
        response = httpx.post(
            endpoint,
            content=body,
            headers={**headers, "Content-Type": "application/json"},
            timeout=30,  # a receiver that cannot reach Redis takes a while to say 503
        )
    except httpx.HTTPError as exc:
        fail(f"POST {endpoint}: {type(exc).__name__}: {exc}")
    click.echo(f"POST {endpoint} -> {response.status_code} {response.text}")
    if not response.is_success:
        sys.exit(1)
