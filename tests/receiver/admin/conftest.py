"""The receiver with the admin token, served on loopback against the test Redis."""

from collections.abc import Iterator

import httpx
import pytest
from redis import Redis

from tests.receiver.admin.support import AUTH, TOKEN
from tests.support import HMAC_CONFIG, ServedApp, make_config, settings


@pytest.fixture
def served(redis: Redis, redis_url: str) -> Iterator[ServedApp]:
    with ServedApp(settings(redis_url, admin_token=TOKEN), make_config(HMAC_CONFIG)) as app:
        yield app


@pytest.fixture
def api(served: ServedApp) -> Iterator[httpx.Client]:
    """A client of the admin API, with the token."""
    with httpx.Client(base_url=f"{served.url}/api", headers=AUTH) as client:
        yield client
