"""Running ``flowhooks`` commands as an operator does: a child process in a folder of its own,
with the environment of a fresh shell, no terminal unless one is given, its output and exit
code to check."""

import json
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from tests.support import FLOWHOOKS, child_env

Run = subprocess.CompletedProcess[str]


def flowhooks(
    *args: str,
    cwd: Path,
    redis_url: str | None = None,
    env: Mapping[str, str] | None = None,
    stdin: int | IO[Any] | None = subprocess.DEVNULL,
    input: str | None = None,
) -> Run:
    """Run ``flowhooks ARGS`` in ``cwd`` to its end (a minute at most); ``redis_url`` becomes
    ``FLOWHOOKS_REDIS_URL``. Its stdin is not a terminal (and empty) unless given."""
    values = {"FLOWHOOKS_REDIS_URL": redis_url} if redis_url else {}
    return subprocess.run(
        [*FLOWHOOKS, *args],
        cwd=cwd,
        env=child_env(**values, **(env or {})),
        stdin=None if input is not None else stdin,
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ok(result: Run) -> str:
    """The output of a command that exited 0."""
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def refused(result: Run, code: int, message: str) -> None:
    """The command exited ``code`` saying ``message`` on stderr, with no traceback and
    nothing on stdout."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def json_lines(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines()]


def columns(text: str) -> list[dict[str, str]]:
    """A text table as rows keyed by its header, each cell cut where its header starts: the
    columns must line up for this to read them back."""
    header, *rows = text.splitlines()
    found = list(re.finditer(r"\S+(?: \S+)*", header))  # names may hold single spaces
    names, starts = [m.group() for m in found], [m.start() for m in found]
    ends = [*starts[1:], None]
    for row in rows:
        for start in starts[1:]:
            if len(row) > start:  # a row ends where its last cells are empty
                assert row[start - 2 : start] == "  ", f"column not aligned at {start}: {row!r}"
    return [
        {n: row[s:e].strip() for n, s, e in zip(names, starts, ends, strict=True)} for row in rows
    ]
