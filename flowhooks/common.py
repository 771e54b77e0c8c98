"""What every ``flowhooks`` command needs: settings, the config and Redis, or a clear exit."""

import sys
from pathlib import Path
from typing import NoReturn

import click
from pydantic import ValidationError
from redis import Redis

from config import logs
from config.connections import connect
from config.loader import ConfigError, load
from config.schema import Config
from config.settings import Settings
from workers.etlworks.chains import loops


def settings_or_exit() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        for err in exc.errors(include_input=False):
            name = "FLOWHOOKS_" + "_".join(str(p) for p in err["loc"]).upper()
            click.echo(f"{name}: {err['msg']}", err=True)
        sys.exit(2)


def config_or_exit(path: Path, *, secrets_of: tuple[str, ...] | None = None) -> Config:
    """The config at ``path``, or its errors printed and exit 2; ``secrets_of`` as
    :func:`config.loader.load` takes it."""
    try:
        return load(path, checks=(loops,), secrets_of=secrets_of)
    except ConfigError as exc:
        for line in exc.errors:
            click.echo(line, err=True)
        sys.exit(2)


def logging_or_exit(settings: Settings) -> None:
    try:
        logs.setup(settings.log_format, settings.log_level)
    except ValueError as exc:
        click.echo(f"FLOWHOOKS_LOG_LEVEL: {exc}", err=True)
        sys.exit(2)


def fail(message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(1)


def redis_client() -> Redis:
    return connect(settings_or_exit())
