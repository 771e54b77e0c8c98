"""The events as an operator reads them: free-text search, "silence this flow" with the count
of recent events it would match, the run's link to Etlworks' UI, durations in words and the
timeline as fields."""

import re
from collections.abc import Iterator
from html import unescape
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from redis import Redis

from config.silences import would_match
from receiver.admin import reports
from tests.receiver.admin.support import AUTH, TOKEN, sign_in, store
from tests.support import ServedApp, make_config, settings

ETLWORKS_CONFIG = """
sources:
  etl:
    verify:
      - hmac: {secrets: ["${SECRET}"]}
    etlworks: prod
etlworks:
  prod:
    url: https://etl.example.test/rest
    api_key: "${TOKEN}"
    ui_url: "https://etl.example.test/#/flows/{flow_id}/runs/{audit_id}"
"""


@pytest.fixture
def with_ui(redis: Redis, redis_url: str) -> Iterator[ServedApp]:
    config = make_config(ETLWORKS_CONFIG)
    with ServedApp(settings(redis_url, admin_token=TOKEN), config) as app:
        yield app


@pytest.fixture
def browser(served: ServedApp) -> Iterator[httpx.Client]:
    client = sign_in(served)
    yield client
    client.close()


def _ids(page: httpx.Response) -> list[str]:
    return re.findall(r'<a href="/ui/events/etl/[^"]+">([^<]+)</a>', page.text)


def test_free_text_search(browser: httpx.Client, api: httpx.Client, redis: Redis) -> None:
    store(redis, "abc-123", flow_name="Orders Load")
    store(redis, "xyz-9", flow_name="invoices", error="Connection refused by warehouse")
    store(redis, "other", flow_name="marts", flow_id="4242", kind="flow.succeeded")
    for text, found in [
        ("ABC", ["abc-123"]),
        ("orders load", ["abc-123"]),
        ("refused", ["xyz-9"]),
        ("4242", ["other"]),
        ("nothing-like-it", []),
    ]:
        assert _ids(browser.get("/events", params={"q": text})) == found, text
        listed = api.get("/events", params={"q": text})
        assert [e["id"] for e in listed.json()] == found
        assert listed.headers["x-total-count"] == str(len(found))
    both = api.get("/events", params={"q": "o", "kind": "flow.failed"})
    assert {e["id"] for e in both.json()} == {"abc-123", "xyz-9"}
    assert api.get("/events", params={"q": "x" * 201}).status_code == 400


def test_silence_this_flow(browser: httpx.Client, api: httpx.Client, redis: Redis) -> None:
    for n in range(3):
        store(redis, f"s-{n}", flow_id="7", flow_name='say "hi"')
    store(redis, "s-other", flow_id="8")
    page = browser.get("/events/etl/s-0")
    link = unescape(re.search(r'href="(/ui/silences\?[^"]+)">Silence this flow', page.text)[1])  # type: ignore[index]
    [matchers] = parse_qs(urlsplit(link).query)["matchers"]
    assert matchers.splitlines() == ['source="etl"', 'flow_id="7"']
    form = browser.get(link.removeprefix("/ui"))
    assert "would have silenced 3 events of the last 24 h" in form.text
    assert "flow_id=&#34;7&#34;</textarea>" in form.text
    preview = api.get("/silences/preview", params={"matcher": ['flow_id=~"7|8"']})
    assert preview.json() == {"matchers": ['flow_id=~"7|8"'], "windowHours": 24.0, "matched": 4}
    bad = api.get("/silences/preview", params={"matcher": 'flow="7"'})
    assert (bad.status_code, "unknown label 'flow'" in bad.json()["error"]) == (400, True)
    wrong = browser.get("/silences", params={"matchers": 'flow="7"'})
    assert "unknown label" in wrong.text


def test_the_run_in_etlworks(with_ui: ServedApp, redis: Redis) -> None:
    store(redis, "ui-1", flow_id="7", audit_id="a/1")
    store(redis, "ui-2", flow_id="7")  # no run to link to
    browser = sign_in(with_ui)
    page = browser.get("/events/etl/ui-1")
    assert 'href="https://etl.example.test/#/flows/7/runs/a%2F1"' in page.text
    assert "The run in Etlworks" not in browser.get("/events/etl/ui-2").text
    browser.close()


def test_the_run_in_etlworks_needs_a_ui_url(browser: httpx.Client, redis: Redis) -> None:
    store(redis, "nu-1", flow_id="7", audit_id="1")
    assert "The run in Etlworks" not in browser.get("/events/etl/nu-1").text


def test_durations_and_timeline_fields_read_as_words(browser: httpx.Client, redis: Redis) -> None:
    entry = {"at": "2026-05-09T03:12:00.123456+00:00", "stage": "delivery", "duration_ms": 1500,
             "wait_s": 120, "routes": ["a", "b"], "detail": {"k": "<b>"}}  # fmt: skip
    store(redis, "du-1", duration_ms=120000, timeline=[entry])
    listed = browser.get("/events")
    assert '<td data-label="Duration">2 min</td>' in listed.text
    page = browser.get("/events/etl/du-1")
    assert "<dt>duration</dt><dd>1.5 s</dd>" in page.text
    assert "<dt>wait</dt><dd>2 min</dd>" in page.text
    assert "<dt>routes</dt><dd>a, b</dd>" in page.text
    assert "&lt;b&gt;" in page.text and "<b>" not in page.text
    assert "2026-05-09 03:12:00.123" in page.text


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(None, ""), (0.45, "450 ms"), (2.5, "2.5 s"), (12, "12 s"), (120, "2 min"),
     (3900, "1 h 5 min"), (273600, "3 d 4 h"), (-5, "-5 s"), (float("nan"), "")],
)  # fmt: skip
def test_durations(seconds: float | None, said: str) -> None:
    assert reports.duration(seconds) == said


def test_would_match_uses_the_silences_grammar() -> None:
    events = [{"flow_id": "7", "tags": ["nightly"]}, {"flow_id": "8", "tags": []}]
    assert would_match(['tags="nightly"'], events) == 1
    assert would_match(['flow_id!="7"'], events) == 1
    with pytest.raises(ValueError, match="at least one matcher"):
        would_match([], events)


NEW_PATHS = [
    ("GET", "/api/overview"),
    ("GET", "/api/incidents"),
    ("GET", "/api/deliveries"),
    ("DELETE", "/api/sessions"),
    ("POST", "/api/dlq/replay"),
    ("GET", "/api/silences/preview"),
]


def test_the_api_needs_its_token_for_the_new_paths(served: ServedApp) -> None:
    for method, path in NEW_PATHS:
        assert httpx.request(method, f"{served.url}{path}").status_code == 401
        assert httpx.request(method, f"{served.url}{path}", headers=AUTH).status_code != 401
