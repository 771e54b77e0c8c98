"""flowhooks as the delivery benchmarks run it: ``flowhooks serve`` and ``flowhooks worker``
processes against a Redis of the benchmark's own, their readiness, and percentiles."""

import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from tests.support import FLOWHOOKS, wait_until


def commands(port: int, workers: int) -> dict[str, list[str]]:
    """The receiver on the loopback ``port`` and ``workers`` workers: command lines by name."""
    found = {"receiver": [*FLOWHOOKS, "serve", "--host", "127.0.0.1", "--port", str(port)]}
    for i in range(workers):
        found[f"worker-{i}"] = [*FLOWHOOKS, "worker", "--name", f"bench-{i}"]
    return found


@contextmanager
def processes(
    named: Mapping[str, Sequence[str]], env: Mapping[str, str], logs: Path | None = None
) -> Iterator[list["subprocess.Popen[bytes]"]]:
    """Run the ``named`` command lines (the output of each to ``{name}.log`` in ``logs``, else
    nowhere) until the block ends; then SIGTERM, and a wait for each to finish its work."""
    with ExitStack() as outputs:
        running = []
        for name, argv in named.items():
            out = (
                subprocess.DEVNULL
                if logs is None
                else outputs.enter_context((logs / f"{name}.log").open("wb"))
            )
            running.append(
                subprocess.Popen(argv, env=dict(env), stdout=out, stderr=subprocess.STDOUT)
            )
        try:
            yield running
        finally:
            for process in running:
                process.terminate()
            for process in running:
                process.wait(30)


def ready(port: int) -> bool:
    """Whether the receiver on ``port`` answers ``/readyz`` (Redis reachable, config loaded)."""
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait_ready(port: int, timeout: float = 30) -> None:
    if not wait_until(lambda: ready(port), timeout, interval=0.1):
        raise RuntimeError("the receiver did not start")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank); NaN for none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")
