"""The state file a running ``flowhooks dev`` leaves for the other commands of its folder."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flowhooks import devstate
from flowhooks.devstate import DevState


def gone_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    return int(child.stdout)


def state(pid: int) -> DevState:
    return DevState(pid, "redis://127.0.0.1:7000/0", "http://127.0.0.1:8000")


def test_a_running_dev_is_found_in_its_folder(tmp_path: Path) -> None:
    written = devstate.write(tmp_path / ".flowhooks", state(os.getpid()))
    assert written == tmp_path / ".flowhooks" / "dev.json"
    assert json.loads(written.read_text()) == {
        "pid": os.getpid(),
        "redis_url": "redis://127.0.0.1:7000/0",
        "receiver": "http://127.0.0.1:8000",
    }
    assert devstate.find(tmp_path) == state(os.getpid())
    assert devstate.find(tmp_path / ".flowhooks") is None  # another folder
    assert [p.name for p in written.parent.iterdir()] == ["dev.json"]  # nothing half-written


def test_a_dev_that_is_gone_is_ignored(tmp_path: Path) -> None:
    devstate.write(tmp_path / ".flowhooks", state(gone_pid()))
    assert devstate.find(tmp_path) is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[]",
        '{"pid": "1", "redis_url": null, "receiver": "http://x"}',
        '{"pid": true, "redis_url": null, "receiver": "http://x"}',
        '{"pid": 0, "redis_url": null, "receiver": "http://x"}',
        '{"pid": {pid}, "redis_url": 5, "receiver": "http://x"}',
        '{"pid": {pid}, "redis_url": null}',
    ],
)
def test_a_file_that_cannot_be_read_is_ignored(tmp_path: Path, text: str) -> None:
    file = tmp_path / ".flowhooks" / "dev.json"
    file.parent.mkdir()
    file.write_text(text.replace("{pid}", str(os.getpid())))
    assert devstate.find(tmp_path) is None


def test_a_dev_without_a_redis_of_its_own(tmp_path: Path) -> None:
    """A dev on the user's ``FLOWHOOKS_REDIS_URL`` writes no URL: it may hold a password."""
    file = tmp_path / ".flowhooks" / "dev.json"
    file.parent.mkdir()
    file.write_text(json.dumps({"pid": os.getpid(), "redis_url": None, "receiver": "http://x"}))
    assert devstate.find(tmp_path) == DevState(os.getpid(), None, "http://x")


def test_remove_leaves_another_devs_file(tmp_path: Path) -> None:
    data = tmp_path / ".flowhooks"
    devstate.write(data, state(os.getpid()))
    devstate.remove(data, os.getpid() + 1)
    assert devstate.find(tmp_path) is not None
    devstate.remove(data, os.getpid())
    assert not (data / "dev.json").exists()
    devstate.remove(data, os.getpid())  # already gone: nothing to do
