"""``flowhooks``: the command, a composition root above the receiver and the workers: serve,
worker, dev, check-config and send-test here; events, routes, silence and dlq in modules of
their own. Exit codes and the shared options: :mod:`flowhooks.common`."""

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

from flowhooks import console, devstate
from flowhooks.common import (
    CONTEXT,
    Group,
    Target,
    config_option,
    config_or_exit,
    fail,
    logging_or_exit,
    redis_option,
    usage,
)
from flowhooks.devserver import run_dev
from flowhooks.etlworks import etlworks
from flowhooks.events import events
from flowhooks.expect import expect
from flowhooks.operations import dlq, silence
from flowhooks.routes import routes
from flowhooks.sendtest import sample, sign
from receiver import reload
from receiver.app import create_app
from workers.etlworks.chains import loops
from workers.worker import run as run_worker


@click.group(cls=Group, context_settings=CONTEXT)
def main() -> None:
    """flowhooks: receive Etlworks webhooks, keep every one, route them.

    Exit codes: 0 done; 1 a check failed, a thing was not found, or Redis could not be used;
    2 the command line, a setting or the config file is wrong."""


for group in (events, routes, silence, dlq, etlworks, expect, *console.COMMANDS):
    main.add_command(group)


@main.command()
@click.option("--host", default="0.0.0.0", show_default=True)  # noqa: S104 (a server)
@click.option("--port", default=8000, show_default=True)
@config_option
@redis_option
def serve(host: str, port: int, config_path: Path, redis: Target) -> None:
    """Run the receiver (the webhook endpoints, /healthz, /readyz, /metrics)."""
    settings = redis.settings.model_copy(update={"config": config_path})
    config = config_or_exit(config_path)
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
@config_option
@redis_option
def worker(
    burst: bool, name: str | None, metrics_port: int | None, config_path: Path, redis: Target
) -> None:
    """Run a worker on the flowhooks queue (with RQ's scheduler). SIGHUP reloads the config."""
    settings = redis.settings.model_copy(update={"config": config_path})
    config = config_or_exit(config_path)
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
@click.argument("path", required=False, type=click.Path(path_type=Path, dir_okay=False))
@config_option
def check_config(path: Path | None, config_path: Path) -> None:
    """Validate the config file PATH (default: --config): exit 2 with an error a line,
    file:line: key.path: message."""
    path = path or config_path
    config = config_or_exit(path)
    click.echo(f"{path}: ok ({len(config.sources)} source(s): {', '.join(config.sources)})")


def _receiver(url: str | None) -> str:
    """``--url``, else the receiver of a ``flowhooks dev`` running here; exit 2 with neither."""
    if url is not None:
        return url
    dev = devstate.find(Path.cwd())
    if dev is None:
        usage("give --url (no `flowhooks dev` is running in this folder)")
    return dev.receiver


@main.command("send-test")
@click.option("--url", help="The receiver's base URL (default: the `flowhooks dev` running here).")
@click.option("--source", required=True, help="A source of the config; its checks sign the event.")
@click.option("--event", "event_name", default="FLOW_FAILED", show_default=True)
@click.option("--flow-id", default=12345, show_default=True)
@config_option
def send_test(
    url: str | None, source: str, event_name: str, flow_id: int, config_path: Path
) -> None:
    """Post a realistic, signed Etlworks event to a running receiver; exit 1 unless it is
    accepted."""
    base = _receiver(url)
    # Only the secrets of the source it signs for: the rest of the config need not be set here.
    config = config_or_exit(config_path, secrets_of=("sources", source))
    if source not in config.sources:
        usage(f"no source {source!r} in the config (known: {', '.join(config.sources)})")
    now = time.time()
    body, headers = sample(event_name, flow_id, now)
    headers |= sign(config.sources[source].verify, body, now)
    endpoint = f"{base.rstrip('/')}/webhooks/{source}"
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
