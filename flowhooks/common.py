"""What every ``flowhooks`` command shares: ``-h`` and ``--version``, the ``--redis-url`` and
``--config`` options, the settings, the config and Redis, and the exit codes.

Exit codes, the same for every command: 0 done; 1 a check failed, a thing was not found, or
Redis could not be used (:func:`fail`); 2 the command line, a setting or the config file is
wrong (click's own usage errors, :func:`usage`, :func:`settings_or_exit`,
:func:`config_or_exit`).

Which Redis a command uses, first found: ``--redis-url``, ``FLOWHOOKS_REDIS_URL``, the Redis of
a ``flowhooks dev`` running in the current folder (:mod:`flowhooks.devstate`), the default.
"""

import importlib.metadata
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit

import click
from click.core import ParameterSource
from pydantic import ValidationError
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from config import logs
from config.connections import connect
from config.loader import ConfigError, load
from config.schema import Config
from config.settings import Settings
from flowhooks import devstate
from workers.etlworks.chains import loops

F = TypeVar("F", bound=Callable[..., Any])

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
REDIS_VARIABLE = "FLOWHOOKS_REDIS_URL"
_TARGET = "flowhooks.redis"
"""Where the Redis a command resolved is kept in click's context, for :meth:`Group.invoke`."""


def _version(command: click.Command) -> None:
    version = importlib.metadata.version("flowhooks")
    click.version_option(version, prog_name="flowhooks", message="%(prog)s %(version)s")(command)


class Command(click.Command):
    """A command with ``--version``, as every command has."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _version(self)


class Group(click.Group):
    """A group whose commands and subgroups are :class:`Command` and :class:`Group`; a Redis
    failure in any of them ends the command with one line (exit 1), not a traceback."""

    command_class = Command
    group_class = type  # its subgroups are of this class too

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _version(self)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RedisError as exc:
            target = ctx.meta.get(_TARGET)
            if not isinstance(target, Target):
                raise
            fail(target.failure(exc))


# Exits ----------------------------------------------------------------------------------------


def fail(message: str) -> NoReturn:
    """Exit 1: a check failed, a thing was not found, Redis could not be used."""
    click.echo(message, err=True)
    sys.exit(1)


def usage(message: str) -> NoReturn:
    """Exit 2 with the command's usage: the command line is wrong."""
    raise click.UsageError(message)


def settings_or_exit(**overrides: Any) -> Settings:
    """The settings from ``FLOWHOOKS_*`` and ``overrides`` (options that take a setting's
    place); exit 2 naming the variable or option of each that is wrong."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        for err in exc.errors(include_input=False):
            name = "FLOWHOOKS_" + "_".join(str(p) for p in err["loc"]).upper()
            if err["loc"] == ("redis_url",) and "redis_url" in overrides:
                name = "--redis-url"
            click.echo(f"{name}: {err['msg']}", err=True)
        sys.exit(2)


def config_or_exit(path: Path, *, secrets_of: tuple[str, ...] | None = None) -> Config:
    """The config at ``path``; exit 2 with its errors (``file:line: key.path: message``).
    ``secrets_of`` as :func:`config.loader.load` takes it."""
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


# Redis ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The Redis a command uses, and why that one."""

    settings: Settings
    origin: str
    """``--redis-url``, ``FLOWHOOKS_REDIS_URL``, ``the flowhooks dev running here (pid N)``
    or ``the default``."""

    @property
    def where(self) -> str:
        """Its location and why, never its password: ``127.0.0.1:6379/0 (the default)``."""
        return f"{self.settings.redis_location} ({self.origin})"

    def connect(self, **options: Any) -> Redis:
        """A client; a Redis that does not answer fails a command within seconds, not hangs."""
        return connect(
            self.settings, **{"socket_connect_timeout": 5, "socket_timeout": 30, **options}
        )

    def failure(self, exc: RedisError) -> str:
        """One line saying what went wrong with this Redis (the URL's password left out)."""
        reason = str(exc)
        password = urlsplit(self.settings.redis_url.get_secret_value()).password
        if password:
            reason = reason.replace(password, "***")
        if isinstance(exc, RedisConnectionError | RedisTimeoutError):
            hint = ""
            if self.origin == "the default":
                hint = f"; set {REDIS_VARIABLE} or --redis-url, or run `flowhooks dev` here"
            return f"cannot reach Redis at {self.where}: {reason}{hint}"
        return f"Redis at {self.where} failed: {type(exc).__name__}: {reason}"

    def empty(self, what: str) -> str:
        """What an empty list says: nothing found, and where it looked."""
        return f"{what} in Redis at {self.where}"


def resolve(flag: str | None, environ: Mapping[str, str], cwd: Path) -> tuple[dict[str, str], str]:
    """The Redis URL to put in the settings (none: the settings read the environment or
    default), and its origin; first ``--redis-url``, then ``FLOWHOOKS_REDIS_URL``, then a
    ``flowhooks dev`` running in ``cwd``, then the default."""
    if flag is not None:
        return {"redis_url": flag}, "--redis-url"
    if environ.get(REDIS_VARIABLE):
        return {}, REDIS_VARIABLE
    dev = devstate.find(cwd)
    if dev is not None and dev.redis_url:
        return {"redis_url": dev.redis_url}, f"the flowhooks dev running here, pid {dev.pid}"
    return {}, "the default"


def _target(ctx: click.Context, param: click.Parameter, value: str | None) -> Target:
    assert param.name is not None
    given = ctx.get_parameter_source(param.name) == ParameterSource.COMMANDLINE
    url, origin = resolve(value if given else None, os.environ, Path.cwd())
    target = Target(settings_or_exit(**url), origin)
    ctx.meta[_TARGET] = target
    return target


def redis_option(command: F) -> F:
    """``--redis-url URL``, passed to the command as ``redis``: a :class:`Target`."""
    return click.option(
        "--redis-url",
        "redis",
        metavar="URL",
        envvar=REDIS_VARIABLE,
        show_envvar=True,
        callback=_target,
        help="The Redis to use. Without it or the variable: the Redis of a `flowhooks dev` "
        "running in this folder, else redis://127.0.0.1:6379/0.",
    )(command)


def config_option(command: F) -> F:
    """``--config PATH``, passed to the command as ``config_path``."""
    return click.option(
        "--config",
        "config_path",
        metavar="PATH",
        type=click.Path(path_type=Path, dir_okay=False),
        envvar="FLOWHOOKS_CONFIG",
        show_envvar=True,
        default=Path("flowhooks.yaml"),
        show_default=True,
        help="The config file.",
    )(command)
