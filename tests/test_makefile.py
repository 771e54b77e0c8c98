"""What ``make test`` needs on a fresh machine, said by ``make`` itself when a part is missing:
Python 3.11+ with venv, Python 3.12+ for the chart tests, Debian's chromium for the browser
test, promtool for the chart's alerts. Each case runs the real Makefile against a part made
missing (nothing is installed)."""

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import child_env

ROOT = Path(__file__).resolve().parents[1]


def make(*args: str, path: str | None = None, home: Path | None = None) -> tuple[int, str]:
    binary = shutil.which("make")
    if binary is None:
        pytest.fail("GNU make is missing: the README's commands need it")
    env = child_env()
    if path is not None:
        env["PATH"] = path
    if home is not None:
        env["HOME"] = str(home)
    done = subprocess.run(
        [binary, "--no-print-directory", "-C", str(ROOT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stderr


def test_a_python_too_old_or_missing_is_named(tmp_path: Path) -> None:
    code, said = make("install", f"VENV={tmp_path}/venv", "PYTHON=/nonexistent/python3")
    assert code == 2
    assert said.startswith(
        "flowhooks needs Python 3.11 or newer with its venv module as /nonexistent/python3:"
        " install one (Debian: apt-get install python3 python3-venv), or name it with"
        " PYTHON=/path/to/python3.11\n"
    )
    assert not (tmp_path / "venv").exists()


def test_no_python_for_the_chart_tests_is_named(tmp_path: Path) -> None:
    # No python3.12 or 3.13 on this PATH, no pyenv, no HELM_PYTHON.
    empty = tmp_path / "bin"
    empty.mkdir()
    stamp = f"{tmp_path}/venv-helm/.installed-0.1.32"
    code, said = make(
        f"HELM_VENV={tmp_path}/venv-helm", "HELM_PYTHON=", stamp, path=str(empty), home=tmp_path
    )
    assert code == 2
    assert said.startswith(
        "The chart tests need Python 3.12 or newer, with its venv module, for the helm-sdkpy"
        " wheel, and none was found (HELM_PYTHON, python3.12, python3.13, pyenv's versions):"
        " install one (Debian: apt-get install python3.12 python3.12-venv; or pyenv install"
        " 3.12), or name it with HELM_PYTHON=/path/to/python3.12\n"
    )
    assert not (tmp_path / "venv-helm").exists()


def test_no_chromium_where_it_cannot_be_installed_is_named() -> None:
    code, said = make("chromium", "CHROMIUM=/nonexistent/chromium", "CAN_INSTALL=")
    assert code == 2
    assert said.startswith(
        "The browser test needs Debian's chromium at /nonexistent/chromium, which is missing:"
        " install it (sudo apt-get install chromium), or run make test as root on Debian or"
        " Ubuntu, which installs it\n"
    )


def test_no_promtool_where_it_cannot_be_installed_is_named() -> None:
    code, said = make("promtool", "PROMTOOL=", "CAN_INSTALL=")
    assert code == 2
    assert said.startswith(
        "The chart's alert tests need promtool, which is missing: install Debian's prometheus"
        " package (sudo apt-get install --no-install-recommends prometheus), or run make test"
        " as root on Debian or Ubuntu, which installs it\n"
    )
