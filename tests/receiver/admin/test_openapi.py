"""The OpenAPI document against the API it describes: schemathesis generates requests from it,
valid and invalid, sends them to the served API (real Redis, some events stored) and checks
every answer: no 5xx, every status, header and body as the document says, invalid input
refused, and no answer without the token.

Its ``positive_data_acceptance`` check is left out: input the document's JSON Schema allows can
still be refused with a documented 400 (a matcher naming an unknown label, a regex that does
not compile, an instant past the year 9999), which no schema can say.
"""

import re
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from redis import Redis
from schemathesis import Case, GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.receiver.admin.support import AUTH, TOKEN, store
from tests.support import ServedApp

pytestmark = pytest.mark.slow


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_FRAMING = {"transfer-encoding", "content-length", "host", "connection", "expect", "upgrade"}


def sendable(case: Case[Any]) -> bool:
    """Whether HTTP can carry the request to the API at all: one with a header that breaks the
    message's framing or syntax is answered by the HTTP server (uvicorn's plain-text 400)
    before any application sees it, so it tells nothing about the API."""
    for name, value in (case.headers or {}).items():
        if not _TOKEN.fullmatch(name) or name.lower() in _FRAMING:
            return False
        if any(char in str(value) for char in "\r\n\x00"):
            return False
    return True


@pytest.fixture
def seeded(redis: Redis) -> None:
    store(redis, "ev-1", timeline=[{"at": "t", "stage": "run", "delivery_id": "d1"}])
    store(redis, "ev-2", source="etl-eu", kind="flow.succeeded", status="success", duration_ms=5)
    store(redis, "odd", raw=[1, "x", None], tags=["a"], params={"k": "v"}, status=None)


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_api_answers_as_its_document_says(served: ServedApp, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{served.url}/api/openapi.json", headers=AUTH)

    @schema.auth()
    class Token:
        """The token on every request, but those meant to go without one."""

        def get(self, case: Case[Any], context: schemathesis.AuthContext) -> str:
            return TOKEN

        def set(self, case: Case[Any], data: str, context: schemathesis.AuthContext) -> None:
            case.headers["Authorization"] = f"Bearer {data}"

    @hypothesis.settings(
        max_examples=400,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=schema.as_strategy(generation_mode=mode))
    def check(case: Case[Any]) -> None:
        hypothesis.assume(sendable(case))
        case.call_and_validate(base_url=served.url, excluded_checks=[positive_data_acceptance])

    check()


def test_the_document_is_served_with_the_token_only(served: ServedApp) -> None:
    document: dict[str, Any] = schemathesis.openapi.from_url(
        f"{served.url}/api/openapi.json", headers=AUTH
    ).raw_schema
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) >= {
        "/api/events",
        "/api/events/{source}/{id}",
        "/api/events/{source}/{id}/replay",
        "/api/dlq",
        "/api/dlq/{job}/replay",
        "/api/dlq/{job}",
        "/api/silences",
        "/api/silences/{id}",
        "/api/metrics/summary",
        "/api/overview",
        "/api/incidents",
        "/api/incidents/{id}/acknowledge",
        "/api/incidents/{id}/resolve",
        "/api/deliveries",
        "/api/deliveries/{action}",
        "/api/dlq/replay",
        "/api/silences/preview",
        "/api/sessions",
    }
    with pytest.raises(Exception, match="401"):
        schemathesis.openapi.from_url(f"{served.url}/api/openapi.json")
