"""The receiver's config, reloaded while it serves: on ``SIGHUP`` and when the file changes, as
the worker does (:mod:`workers.context`).

:func:`watch` runs in the receiver's lifespan and looks once a second for a request (a
``SIGHUP`` caught by the handler :func:`install` sets) or a change of the file's time or size.
It loads the file in a thread, off the event loop; a config that loads is handed to ``use``,
which the receiver reads from its next request on; a broken one is logged, counted in
``flowhooks_config_reloads_total{outcome="invalid"}`` and ignored, and the old one stays in
force. Neither the signal nor a broken file ever stops the receiver.
"""

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from prometheus_client import Counter

from config.loader import Check, ConfigError, load
from config.schema import Config

log = logging.getLogger("flowhooks.receiver")

INTERVAL = 1.0
"""Seconds between two looks at the file (a ``stat``) and at the signal's flag."""

_requested = False
_checks: tuple[Check, ...] = ()
"""Process-wide, as the signal is: set by :func:`install`, read by :func:`watch`."""


def install(checks: Sequence[Check] = ()) -> None:
    """Reload on ``SIGHUP``, running ``checks`` on each new config as the command that started
    the receiver ran them on the first. Call from the main thread, before serving."""
    global _checks  # noqa: PLW0603 (one handler per process, installed by its command)
    _checks = tuple(checks)
    signal.signal(signal.SIGHUP, _request)


def _request(signum: int, frame: FrameType | None) -> None:
    global _requested  # noqa: PLW0603 (a signal handler's flag)
    _requested = True


async def watch(
    path: Path,
    use: Callable[[Config], None],
    reloads: Counter,
    interval: float = INTERVAL,
) -> None:
    """Reload the config at ``path`` into ``use`` whenever asked or changed; until cancelled."""
    global _requested  # noqa: PLW0603 (taken once acted on)
    seen = _stamp(path)
    while True:
        await asyncio.sleep(interval)
        stamp = _stamp(path)
        if not _requested and stamp == seen:
            continue
        _requested = False
        seen = stamp
        try:
            await reload(path, use, reloads)
        except Exception:  # a bug here must not end the reloads, nor the receiver
            reloads.labels("invalid").inc()
            log.exception("config reload failed, the old one stays in force")


async def reload(path: Path, use: Callable[[Config], None], reloads: Counter) -> bool:
    """Load the config at ``path`` and hand it to ``use``; whether it loaded. A broken config is
    logged with its errors and counted; nothing is raised."""
    try:
        config = await asyncio.to_thread(load, path, checks=_checks)
    except ConfigError as exc:
        reloads.labels("invalid").inc()
        log.error(
            "new config ignored, the old one stays in force",
            extra={"config": str(path), "errors": exc.errors},
        )
        return False
    use(config)
    reloads.labels("ok").inc()
    log.info("config reloaded", extra={"config": str(path), "sources": sorted(config.sources)})
    return True


def _stamp(path: Path) -> tuple[float, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime, stat.st_size
