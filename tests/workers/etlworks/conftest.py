"""A fresh Etlworks simulator for each test that asks for one (the same fixture as in
tests/etlworks/conftest.py, until it moves to tests/conftest.py for every package)."""

from collections.abc import Iterator

import pytest

from tests.etlworks.simulator import Simulator, serve_simulator


@pytest.fixture
def etlworks_sim() -> Iterator[Simulator]:
    """A simulator with no flows yet (:meth:`Simulator.add_flow`), running 1000 times faster
    than the wall clock, retrying a failed webhook after 0.1 s."""
    with serve_simulator(speed=1000.0, webhook_retry_delay=0.1) as simulator:
        yield simulator
