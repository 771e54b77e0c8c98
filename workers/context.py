"""What every task needs, built once by the worker's composition root (:mod:`workers.worker`).

Tasks are plain functions RQ calls by name, so the context is installed at worker start and
read by the task, never built at import time.
"""

from dataclasses import dataclass

from config.schema import Config
from config.settings import Settings


@dataclass(frozen=True)
class WorkerContext:
    settings: Settings
    config: Config


_current: WorkerContext | None = None


def install(context: WorkerContext) -> None:
    global _current  # noqa: PLW0603 (the one process-wide slot, set by the composition root)
    _current = context


def current() -> WorkerContext:
    if _current is None:
        raise RuntimeError("no worker context: start tasks through `flowhooks worker`")
    return _current
