"""The state file of a running ``flowhooks dev``: ``<data folder>/dev.json``.

While it runs, ``flowhooks dev`` keeps ``{"pid": …, "redis_url": …, "receiver": …}`` there
(:func:`write`) and removes it when it stops (:func:`remove`); every other command started in
the same folder reads it (:func:`find`) to reach that dev's Redis, whose port changes from run
to run. A file left behind by a dev that was killed names a process that is gone, and is
ignored.

``redis_url`` is the embedded Redis' own (``redis://127.0.0.1:PORT/0``, no password). A dev
started with ``FLOWHOOKS_REDIS_URL`` writes ``null`` there: the user's URL may carry a password,
which has no place in a file.
"""

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

DATA = Path(".flowhooks")
"""The data folder of ``flowhooks dev``, under the folder it runs in."""
FILE = "dev.json"


@dataclass(frozen=True)
class DevState:
    pid: int
    """The dev supervisor's process."""
    redis_url: str | None
    receiver: str
    """The receiver's base URL, ``http://127.0.0.1:PORT``."""


def path(data: Path) -> Path:
    return data / FILE


def find(cwd: Path) -> DevState | None:
    """The ``flowhooks dev`` running with its data in ``cwd/.flowhooks``; ``None`` when there is
    none: no file, a file that cannot be read, or one whose process is gone."""
    state = read(path(cwd / DATA))
    return state if state is not None and alive(state.pid) else None


def read(file: Path) -> DevState | None:
    """The state in ``file``, whether its process runs or not; ``None`` if it cannot be read."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    pid, redis_url, receiver = data.get("pid"), data.get("redis_url"), data.get("receiver")
    if type(pid) is not int or pid <= 0 or not isinstance(receiver, str):
        return None
    if redis_url is not None and not isinstance(redis_url, str):
        return None
    return DevState(pid, redis_url, receiver)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: the checks of kill(2), no signal sent
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def write(data: Path, state: DevState) -> Path:
    """Write the state file into the data folder ``data`` at once (readers never see half of
    it, and readable by its owner alone); return its path."""
    data.mkdir(parents=True, exist_ok=True)
    target = path(data)
    partial = target.with_name(f".{FILE}.{state.pid}")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    # readable by its owner alone from the first byte on: it names a Redis
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(json.dumps(asdict(state)) + "\n")
    partial.replace(target)
    return target


def remove(data: Path, pid: int) -> None:
    """Remove the state file of process ``pid``; a file another dev wrote meanwhile stays."""
    target = path(data)
    state = read(target)
    if state is not None and state.pid == pid:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
