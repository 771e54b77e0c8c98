"""``flowhooks dev`` as a newcomer runs it: a process of its own, its banner followed to the
letter (the printed ``send-test`` and ``events list`` commands run in bash), then Ctrl-C."""

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from redis import Redis

from config import eventlog
from tests.support import FLOWHOOKS, child_env, free_port, run_process, wait_until

pytestmark = pytest.mark.slow

BANNER_END = "Ctrl-C stops everything."


Proc = tuple[int, str]
"""A process as (pid, start time), so a reused pid is not mistaken for it."""


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    return [str(pid), "comm", *text[text.rindex(")") + 2 :].split()]


def descendants(root: int) -> dict[Proc, str]:
    """Every living process below ``root``, with its command line."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            parents.setdefault(int(fields[3]), []).append(int(entry.name))
    found: dict[Proc, str] = {}
    todo = list(parents.get(root, []))
    while todo:
        pid = todo.pop()
        fields = _stat(pid)
        if fields is None:
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        found[(pid, fields[21])] = cmdline.strip()
        todo.extend(parents.get(pid, []))
    return found


def parent(proc: Proc) -> int | None:
    fields = _stat(proc[0])
    return int(fields[3]) if fields is not None and fields[21] == proc[1] else None


def alive(proc: Proc) -> bool:
    fields = _stat(proc[0])
    return fields is not None and fields[21] == proc[1] and fields[2] != "Z"


class Dev:
    """A running ``flowhooks dev`` and everything it printed so far (stdout and stderr, its
    children's included)."""

    def __init__(self, cwd: Path, port: int, data: Path, env: dict[str, str]) -> None:
        self.port = port
        self.process = subprocess.Popen(
            [*FLOWHOOKS, "dev", "--port", str(port), "--data", str(data)],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.seen: dict[Proc, str] = {}
        """Every descendant :meth:`children` found, to clean up after a failed test."""
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 60) -> re.Match[str]:
        """The ``count``-th line matching ``pattern``, once printed; fail if it never is."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                matches = [m for line in self.lines if (m := regex.search(line))]
                if len(matches) >= count:
                    return matches[count - 1]
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    printed = "\n".join(self.lines)
                    pytest.fail(f"dev never printed {pattern!r} x{count}; it printed:\n{printed}")
                self._changed.wait(min(left, 0.5))

    def banner_command(self, word: str) -> str:
        """The banner's shell command containing ``word``."""
        self.wait_for(re.escape(BANNER_END))
        (line,) = [line for line in self.lines if word in line and "flowhooks" in line]
        return line.strip()

    def children(self) -> dict[Proc, str]:
        """Its processes (receiver, worker and what they fork, Redis) and their command lines."""
        found = descendants(self.process.pid)
        self.seen |= found
        return found

    def interrupt(self, timeout: float = 60) -> int:
        """Ctrl-C; the exit code."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout)

    def close(self) -> None:
        """Kill it if it still runs; release the pipe once its last holder is gone."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(10)
        if not self._reader.is_alive():
            assert self.process.stdout is not None
            self.process.stdout.close()


@contextmanager
def dev(cwd: Path, data: Path, env: dict[str, str]) -> Iterator[Dev]:
    running = Dev(cwd, free_port(), data, env)
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.children()
            running.process.kill()
            running.process.wait()
        for proc in running.seen:  # whatever a failed test left behind
            if alive(proc):
                os.kill(proc[0], signal.SIGKILL)
        running.close()


def bash(command: str, cwd: Path, env: dict[str, str]) -> str:
    result = run_process(["bash", "-c", command], env, cwd)
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def send_test(running: Dev, cwd: Path, env: dict[str, str]) -> str:
    """Run the banner's ``send-test`` command; the id of the event it sent."""
    printed = bash(running.banner_command("send-test"), cwd, env)
    match = re.search(r"-> 202 (\{.*\})", printed)
    assert match, printed
    event_id = json.loads(match.group(1))["id"]
    assert isinstance(event_id, str)
    return event_id


def wait_gone(procs: Collection[Proc], timeout: float = 10) -> list[Proc]:
    """Those of ``procs`` still alive after ``timeout`` (a signal takes a moment to act)."""
    wait_until(lambda: not any(alive(p) for p in procs), timeout)
    return [p for p in procs if alive(p)]


def stop_and_check(running: Dev) -> None:
    """Ctrl-C stops dev with 0 and leaves none of the processes it ever had behind."""
    running.children()
    assert running.interrupt() == 0, running.output
    assert [running.seen[p] for p in wait_gone(running.seen)] == []
    assert "Traceback" not in running.output, running.output


def test_dev_runs_everything_and_keeps_events_across_runs(tmp_path: Path) -> None:
    project = tmp_path / "my project"  # the banner's commands must survive a space in a path
    project.mkdir()
    data = project / ".flowhooks"
    env = child_env()
    with dev(project, data, env) as first:
        event_id = send_test(first, project, env)
        first.wait_for(f"event picked up: FLOW_FAILED .*event_id={re.escape(event_id)}")
        commands = list(first.children().values())
        assert sum("redis-server" in c for c in commands) == 1
        assert sum(" worker " in c for c in commands) >= 1
        assert sum(" serve " in c for c in commands) == 1
        stop_and_check(first)
    assert (data / "dev-secret").stat().st_mode & 0o077 == 0  # the secret is the user's alone

    with dev(project, data, env) as second:
        listed = bash(second.banner_command("events list"), project, env)
        assert event_id in listed
        assert "flow.failed" in listed
        # The same secret as the first run, so senders configured then still verify.
        second_id = send_test(second, project, env)
        assert second_id != event_id
        stop_and_check(second)


OWN_CONFIG = """
sources:
  prod:
    verify:
      - hmac: {secrets: ["${PROD_WEBHOOK_SECRET}"]}
"""


def test_dev_with_its_own_redis_and_config_restarts_a_dead_worker(
    tmp_path: Path, redis: Redis, redis_url: str
) -> None:
    config = tmp_path / "flowhooks.yaml"
    config.write_text(OWN_CONFIG)
    env = child_env(
        FLOWHOOKS_REDIS_URL=redis_url,
        FLOWHOOKS_CONFIG=str(config),
        PROD_WEBHOOK_SECRET="prod-secret-for-tests",
    )
    with dev(tmp_path, tmp_path / ".flowhooks", env) as running:
        # The user's own URL may carry credentials: the banner refers to it, never prints it.
        running.wait_for(r"redis +\$FLOWHOOKS_REDIS_URL$")
        state = json.loads((tmp_path / ".flowhooks" / "dev.json").read_text())
        assert state == {
            "pid": running.process.pid,
            "redis_url": None,  # the user's URL may carry a password: never in a file
            "receiver": f"http://127.0.0.1:{running.port}",
        }
        assert "--source prod" in running.banner_command("send-test")
        first_id = send_test(running, tmp_path, env)
        running.wait_for(f"event picked up: .*event_id={re.escape(first_id)}")
        running.wait_for("Acquired scheduler lock for flowhooks")
        commands = running.children()
        assert not any("redis-server" in c for c in commands.values()), commands

        # RQ's scheduler is a thread of the worker: the worker is one process, and killed
        # outright it comes back (under a name RQ accepts).
        workers = [p for p, c in commands.items() if " worker " in c]
        (worker,) = [p for p in workers if parent(p) == running.process.pid]
        assert workers == [worker], commands
        os.kill(worker[0], signal.SIGKILL)
        running.wait_for("dev: worker exited")
        running.wait_for("Listening on flowhooks", count=2)
        second_id = send_test(running, tmp_path, env)
        running.wait_for(f"event picked up: .*event_id={re.escape(second_id)}")
        stop_and_check(running)

    for event_id in (first_id, second_id):
        stored = eventlog.load(redis, f"prod:{event_id}")
        assert stored is not None
        assert [entry["stage"] for entry in stored.timeline] == ["received", "picked_up", "routed"]
    assert not (tmp_path / ".flowhooks" / "redis").exists()


def mentioning(text: str) -> list[str]:
    """The command lines of the living processes (zombies aside) that mention ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        fields = _stat(int(entry.name)) if entry.name.isdigit() else None
        if fields is None or fields[2] == "Z":
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(cmdline)
    return found


def dev_once(cwd: Path, port: int, data: Path, env: dict[str, str]) -> tuple[int, str]:
    """A ``flowhooks dev`` expected to stop by itself: its exit code and output."""
    argv = [*FLOWHOOKS, "dev", "--port", str(port), "--data", str(data)]
    result = run_process(argv, env, cwd)
    return result.returncode, result.stdout + result.stderr


def test_one_dev_per_data_folder_and_port(tmp_path: Path) -> None:
    env = child_env()
    data = tmp_path / ".flowhooks"
    with dev(tmp_path, data, env) as first:
        first.wait_for(re.escape(BANNER_END))
        state = json.loads((data / "dev.json").read_text())
        assert state["pid"] == first.process.pid
        assert state["receiver"] == f"http://127.0.0.1:{first.port}"
        assert Redis.from_url(state["redis_url"]).ping()
        assert (data / "dev.json").stat().st_mode & 0o077 == 0

        # The same folder, another port: refused at once, before any Redis of its own.
        code, printed = dev_once(tmp_path, free_port(), data, env)
        assert code == 2
        assert printed == (
            f"dev: another flowhooks dev (pid {first.process.pid}, receiver"
            f" http://127.0.0.1:{first.port}) is running with the data folder {data}: stop it"
            " first, or give this one a folder of its own (--data)\n"
        )
        # Another folder, the same port: refused, nothing started in that folder.
        other = tmp_path / "other"
        code, printed = dev_once(tmp_path, first.port, other, env)
        assert code == 2
        assert printed == (
            f"dev: port {first.port} is in use by another program: choose another with --port"
            f" (make dev PORT={first.port + 1})\n"
        )
        assert sorted(p.name for p in other.iterdir()) == ["dev.lock"]

        assert sum("redis-server" in c for c in first.children().values()) == 1
        assert "Traceback" not in first.output
        stop_and_check(first)
    assert not (data / "dev.json").exists()


def test_a_dev_killed_outright_leaves_its_folder_to_no_second_redis(tmp_path: Path) -> None:
    """Its children outlive a SIGKILL (they run in sessions of their own) and keep the folder
    locked: a second ``dev`` there would start a second Redis on the same AOF file."""
    env = child_env()
    data = tmp_path / ".flowhooks"
    with dev(tmp_path, data, env) as first:
        first.wait_for(re.escape(BANNER_END))
        left = first.children()
        first.process.kill()
        first.process.wait()

        code, printed = dev_once(tmp_path, free_port(), data, env)
        assert code == 2
        assert printed.startswith(
            f"dev: the data folder {data} is held by processes a flowhooks dev left running"
        )
        for proc in left:
            if alive(proc):
                os.kill(proc[0], signal.SIGKILL)
        assert wait_gone(left) == []

    # Once they are gone, the folder is free again, and its events with it.
    with dev(tmp_path, data, env) as second:
        second.wait_for(re.escape(BANNER_END))
        stop_and_check(second)


def test_a_child_that_cannot_start_stops_dev_without_a_restart_loop(tmp_path: Path) -> None:
    config = tmp_path / "flowhooks.yaml"
    config.write_text(OWN_CONFIG.replace("hmac:", "hamc:"))
    env = child_env(FLOWHOOKS_CONFIG=str(config), PROD_WEBHOOK_SECRET="s")
    with dev(tmp_path, tmp_path / ".flowhooks", env) as running:
        code = running.process.wait(60)
        assert code == 2, running.output
        running.wait_for(r"^dev: the (worker|receiver) exited \(2\) before everything was up;")
        assert "restarting" not in running.output
        assert "sources.prod.verify[0].hamc: unknown key" in running.output
        assert BANNER_END not in running.output
    # Redis was started before the worker and the receiver failed: it is stopped too.
    assert mentioning(str(tmp_path)) == []
    assert not (tmp_path / ".flowhooks" / "dev.json").exists()
