"""``make demo`` (``python -m tests.etlworks.demo``) as a newcomer runs it: real ``flowhooks
dev``, the simulator, the chain config; the story it ends with, and nothing left running."""

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import child_env, run_process

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DEMO = [sys.executable, "-m", "tests.etlworks.demo"]


def test_the_demo_tells_the_story_of_a_failure_retried_and_its_dependent_run() -> None:
    # Any free port for the simulator, so that the suites of several clones can run at once:
    # a copy of the chain config calls it there.
    done = subprocess.run(
        [*DEMO, "--simulator-port", "0"],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr
    out = done.stdout
    assert "Traceback" not in out + done.stderr
    # It said what it does, showed dev and the simulator at work...
    assert re.search(r"demo: \S+/chain.yaml is config/examples/chain.yaml calling the simu", out)
    assert "  dev | flowhooks dev is running" in out
    assert "  etlworks | flow 101 run 1001 ended: error" in out
    assert "  etlworks | flow 101 run 1002 ended: success" in out
    assert "  etlworks | flow 12346 run 1003 ended: success" in out
    # ...and ended with the story: each event as `events show` prints it, then a recap.
    story = out[out.index("demo: the story, as `flowhooks events show` tells it:") :]
    assert len(re.findall(r"^\$ flowhooks events show \S+ --source etlworks$", story, re.M)) == 3
    assert re.search(r"^\S+ +run +.*outcome=etlworks:run-101-1002-succeeded", story, re.M)
    recap = story[story.index("demo: in short") :].strip().splitlines()[1:]
    assert [re.sub(r"^  \d\d:\d\d:\d\d UTC  ", "", line) for line in recap] == [
        "flow 101 warehouse-load-orders: flow.failed; retry-orders ran flow 101"
        " (audit id 1002), which ended success",
        "flow 101 warehouse-load-orders: flow.succeeded; load-marts ran flow 12346"
        " (audit id 1003), which ended success",
        "flow 12346 load-marts: flow.succeeded",
    ]
    # Everything it started is gone with its folder.
    folder = re.search(r"(/\S*flowhooks-demo-[^/\s]+)/", out)
    assert folder and not Path(folder.group(1)).exists()
    assert not any(folder.group(1) in line for line in _commands())


def test_a_port_asked_for_and_taken_stops_it_at_once() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_process([*DEMO, "--simulator-port", str(port)], child_env(), ROOT)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"demo: port {port} is in use: choose another with --simulator-port\n"


def _commands() -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
    return found
