"""``flowhooks expect``: the expectations of the config (``expect:``) and how each stands, read
from the state the workers keep (:mod:`workers.expectations`)."""

from datetime import UTC, datetime
from pathlib import Path

import click
from redis.exceptions import RedisError

from flowhooks.common import Group, Target, config_option, config_or_exit, fail, redis_option
from flowhooks.output import Output, lines, output_option, table, when
from workers import expectations

HEADERS = ("NAME", "EXPECTS", "LAST SUCCESS", "NEXT DEADLINE", "MISSED")


@click.group(cls=Group)
def expect() -> None:
    """Flows that must succeed on a schedule: a deadline missed is an expectation.missed event."""


@expect.command("status")
@output_option
@config_option
@redis_option
def expect_status(output: Output, config_path: Path, redis: Target) -> None:
    """Each expectation: its last success, its next deadline, and the deadline it missed, if
    no success has come since."""
    # no secret is needed to tell how the expectations stand
    config = config_or_exit(config_path, secrets_of=("expect",))
    if not config.expect:
        click.echo(f"no expectations in {config_path} (add an expect: section)")
        return
    try:
        rows = expectations.status(redis.connect(), config, datetime.now(UTC))
    except RedisError as exc:
        fail(redis.failure(exc))
    if output == "json":
        lines(rows)
        return
    click.echo(
        table(
            HEADERS,
            [
                (
                    r["name"],
                    r["expects"],
                    when(r["last_success"]) if r["last_success"] else "never seen",
                    when(r["next_deadline"]),
                    when(r["missed"]) if r["missed"] else "no",
                )
                for r in rows
            ],
        )
    )
