"""Functions a worker process imports by name in the resilience tests, to stop at a point a
test wants to kill it at.

:func:`hold_in_maintenance` is an RQ failure callback: RQ's abandoned-job recovery calls it
for an abandoned job inside its maintenance (under the maintenance lock). The first call marks
:data:`HELD` and sleeps, so the test finds the worker there; later calls return at once.
"""

import os
import time
from typing import Any

from redis import Redis

HELD = "test:held-in-maintenance"


def hold_in_maintenance(job: Any, connection: Redis, *exc_info: Any) -> None:
    if connection.set(HELD, os.getpid(), nx=True):
        time.sleep(50)
