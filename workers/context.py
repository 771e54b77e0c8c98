"""What every task needs, built once by the worker's composition root (:mod:`workers.worker`).

Tasks are plain functions RQ calls by name, so the context is installed at worker start and
read by the task, never built at import time. The config is reloaded when the worker gets
SIGHUP or the file changes; a broken new config is logged, counted and ignored, and the old
one stays in force.
"""

import asyncio
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx

from config.loader import ConfigError, load
from config.schema import Config
from config.settings import Settings
from workers.etlworks.chains import loops
from workers.metrics import WorkerMetrics

log = logging.getLogger("flowhooks.worker")
T = TypeVar("T")


class WorkerContext:
    def __init__(self, settings: Settings, config: Config, metrics: WorkerMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._config = config
        self._stamp = _stamp(settings.config)
        self._reload_requested = False
        self.stopping = False
        """Set when the worker was asked to stop: a job finishes its own work, takes no more."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run a job's async part on the worker's one event loop, which keeps the shared HTTP
        client (and its open connections) from job to job.

        Whatever escapes the loop (RQ's ``JobTimeoutException`` strikes wherever the loop is,
        often waiting on a socket) first cancels what is left of the job's work, which would
        otherwise run on in the next job's turn of the loop."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        loop = self._loop
        task = loop.create_task(work)
        try:
            return loop.run_until_complete(task)
        except BaseException:
            _cancel_all(loop)
            raise

    def close(self) -> None:
        """Close the shared HTTP client and the event loop (the next :meth:`run` makes new)."""
        if self._loop is None:
            return
        if self._client is not None:
            self._loop.run_until_complete(self._client.aclose())
            self._client = None
        self._loop.close()
        self._loop = None

    @property
    def client(self) -> httpx.AsyncClient:
        """The HTTP client every sink shares; only valid inside :meth:`run`."""
        if self._client is None:
            # Redirects are never followed (a sink's URL is a secret it must not forward).
            self._client = httpx.AsyncClient(follow_redirects=False, timeout=30.0)
        return self._client

    def request_reload(self) -> None:
        """Ask for a reload before the next task (safe to call from a signal handler)."""
        self._reload_requested = True

    @property
    def config(self) -> Config:
        stamp = _stamp(self.settings.config)
        if self._reload_requested or stamp != self._stamp:
            self._reload_requested = False
            self._stamp = stamp
            self._reload()
        return self._config

    def _reload(self) -> None:
        try:
            self._config = load(self.settings.config, checks=(loops,))
        except ConfigError as exc:
            self.metrics.config_reloads.labels("invalid").inc()
            log.error(
                "new config ignored, the old one stays in force",
                extra={"errors": exc.errors},
            )
            return
        self.metrics.config_reloads.labels("ok").inc()
        log.info("config reloaded", extra={"config": str(self.settings.config)})


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel every task left on ``loop`` and let each one unwind."""
    left = asyncio.all_tasks(loop)
    for task in left:
        task.cancel()
    if left:
        loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))


def _stamp(path: Path) -> tuple[float, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime, stat.st_size


_current: WorkerContext | None = None


def install(context: WorkerContext) -> None:
    global _current  # noqa: PLW0603 (the one process-wide slot, set by the composition root)
    _current = context


def current() -> WorkerContext:
    if _current is None:
        raise RuntimeError("no worker context: start tasks through `flowhooks worker`")
    return _current
