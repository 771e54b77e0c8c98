"""The shared contract of the sinks: the error type, the classifier, the HTTP wrapper, the log
redaction and the dispatcher."""

import ast
import importlib
import inspect
import logging
import pickle
import pkgutil
import time
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import SecretStr

import workers.sinks
from config.schema import Action, LogAction, SlackAction
from tests.workers.sinks.standins import HttpStandIn, Reply, failure, run
from workers.sinks import (
    MAX_BODY,
    MAX_RETRY_AFTER,
    DeliveryError,
    check_response,
    parse_retry_after,
    post,
)
from workers.sinks.registry import send

NOW = datetime(2026, 5, 9, 3, 12, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("120", 120.0),
        (" 2 ", 2.0),
        ("0", 0.0),
        ("Sat, 09 May 2026 03:13:30 GMT", 90.0),
        ("Saturday, 09-May-26 03:13:30 GMT", 90.0),  # RFC 850, obsolete but allowed
        ("Sat May  9 03:13:30 2026", 90.0),  # asctime, read as UTC
        ("Sat, 09 May 2026 03:00:00 GMT", 0.0),  # in the past: now
        ("86400", MAX_RETRY_AFTER),
        ("9" * 5000, MAX_RETRY_AFTER),  # longer than int() will parse
        ("Sat, 09 May 2099 03:13:30 GMT", MAX_RETRY_AFTER),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        ("\u0662", None),  # a digit, but not an ASCII one
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


def test_a_date_without_a_zone_is_utc_whatever_the_local_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert parse_retry_after("Sat May  9 03:13:30 2026", NOW) == 90.0
        assert parse_retry_after("Sat, 09 May 2026 03:13:30 -0000", NOW) == 90.0
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        *((status, True) for status in (408, 425, 429, 500, 502, 503, 599)),
        *((status, False) for status in (400, 401, 403, 404, 410, 413, 422, 301, 302, 304, 600)),
    ],
)
def test_check_response_classes(status: int, retryable: bool) -> None:
    with pytest.raises(DeliveryError) as caught:
        check_response("x", httpx.Response(status, headers={"retry-after": "7"}))
    error = caught.value
    assert (error.retryable, error.status) == (retryable, status)
    assert error.retry_after == (7.0 if retryable else None)
    assert str(error).startswith(f"x: HTTP {status}")


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_check_response_success(status: int) -> None:
    check_response("x", httpx.Response(status))


def test_check_response_ok_rejects_a_2xx_permanently() -> None:
    with pytest.raises(DeliveryError) as caught:
        check_response("x", httpx.Response(200, text="nope"), ok=lambda r: r.text == "ok")
    assert (caught.value.retryable, caught.value.status) == (False, 200)
    assert "nope" not in str(caught.value)


def test_check_response_reads_an_http_date_against_the_server_date() -> None:
    date = "Sat, 09 May 2026 03:12:00 GMT"
    later = "Sat, 09 May 2026 03:12:45 GMT"
    response = httpx.Response(503, headers={"date": date, "retry-after": later})
    with pytest.raises(DeliveryError) as caught:
        check_response("x", response)  # the server's clock, not ours, which is years later
    assert caught.value.retry_after == 45.0


def test_check_response_never_quotes_the_reason_phrase_or_body() -> None:
    response = httpx.Response(
        400, text="secret-body", extensions={"reason_phrase": b"secret-phrase"}
    )
    with pytest.raises(DeliveryError) as caught:
        check_response("x", response)
    assert str(caught.value) == "x: HTTP 400 Bad Request (permanent)"


def test_delivery_error_reads_well_and_survives_pickling() -> None:
    error = DeliveryError("slack", "HTTP 429 Too Many Requests", retryable=True, status=429)
    error.retry_after = 2.0
    assert str(error) == "slack: HTTP 429 Too Many Requests (retryable, retry after 2s)"
    assert repr(error) == (
        "DeliveryError('slack', 'HTTP 429 Too Many Requests', retryable=True, status=429, "
        "retry_after=2.0)"
    )
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.sink, copy.reason, copy.retryable, copy.status, copy.retry_after) == (
        "slack",
        "HTTP 429 Too Many Requests",
        True,
        429,
        2.0,
    )


def test_post_connection_refused_is_retryable(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/x"
    error = failure(lambda client: post("x", client, url, b"{}", {}))
    assert (error.retryable, error.status, error.reason) == (True, None, "ConnectError")
    assert error.__context__ is None and error.__cause__ is None


def test_post_timeout_is_retryable(standin: HttpStandIn) -> None:
    url = standin.slow_url()
    error = failure(lambda client: post("x", client, url, b"{}", {}), timeout=0.1)
    assert (error.retryable, error.reason) == (True, "ReadTimeout")


def test_post_past_its_deadline_is_retryable(standin: HttpStandIn) -> None:
    url = standin.slow_url()
    error = failure(lambda client: post("x", client, url, b"{}", {}, deadline=0.1))
    assert (error.retryable, error.reason) == (True, "deadline exceeded")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://127.0.0.1/x", "UnsupportedProtocol"),
        ("http://[::1/x", "InvalidURL"),
        ("http://127.0.0.1:99999/x", "ExceptionGroup"),  # not an httpx error at all
    ],
)
def test_post_unusable_url_is_permanent(url: str, reason: str) -> None:
    error = failure(lambda client: post("x", client, url, b"{}", {}))
    assert (error.retryable, error.reason) == (False, reason)
    assert "127.0.0.1" not in str(error)


def test_post_reads_a_capped_body_and_follows_no_redirect(standin: HttpStandIn) -> None:
    standin.reset(Reply(body=b"x" * (3 * MAX_BODY)), Reply(302, headers={"location": "/y"}))
    big = run(lambda client: post("x", client, standin.url(), b"{}", {}))
    assert (big.status_code, len(big.content)) == (200, MAX_BODY)
    moved = run(lambda client: post("x", client, standin.url(), b"{}", {}))
    assert moved.status_code == 302
    assert len(standin.requests) == 2


def test_httpx_request_lines_show_only_the_origin(
    standin: HttpStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    run(lambda client: post("x", client, standin.url("/path/s3cret?token=t0ken"), b"{}", {}))
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert lines == [f'HTTP Request: POST http://127.0.0.1:{standin.port}/… "HTTP/1.1 200 OK"']
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("uvicorn"))
    assert "s3cret" not in ours and "t0ken" not in ours


def test_send_picks_the_sink_the_action_names(
    standin: HttpStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    slack = Action(slack=SlackAction(webhook_url=SecretStr(standin.url("/hook"))))
    assert run(lambda client: send(slack, {"text": "hi"}, client=client, delivery_id="d")) == 200
    assert standin.requests[0].json() == {"text": "hi"}
    log = Action(log=LogAction())
    assert run(lambda client: send(log, "hello", client=client, delivery_id="d")) is None
    assert [r.getMessage() for r in caplog.records if r.name == "flowhooks.deliveries"] == ["hello"]
    with pytest.raises(TypeError, match="a str is not a slack payload"):
        run(lambda client: send(slack, "text", client=client, delivery_id="d"))


def test_a_payload_json_cannot_hold_is_permanent(standin: HttpStandIn) -> None:
    slack = Action(slack=SlackAction(webhook_url=SecretStr(standin.url("/hook"))))
    payload = {"when": datetime.now(UTC), "nan": float("nan")}
    error = failure(lambda client: send(slack, payload, client=client, delivery_id="d"))
    assert (error.retryable, error.reason) == (False, "payload is not JSON serializable")
    assert not standin.requests


def test_the_public_surface_is_declared() -> None:
    source = ast.parse(inspect.getsource(workers.sinks))
    imported = {
        (alias.asname or alias.name).split(".")[0]
        for node in source.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    public = {name for name in vars(workers.sinks) if not name.startswith("_")}
    submodules = {module.name for module in pkgutil.iter_modules(workers.sinks.__path__)}
    assert public - imported - submodules == set(workers.sinks.__all__)


@pytest.mark.parametrize("name", ["slack", "pagerduty", "email", "webhook", "log"])
def test_each_sink_module_has_one_public_function_send(name: str) -> None:
    module = importlib.import_module(f"workers.sinks.{name}")
    functions = [
        n
        for n, value in vars(module).items()
        if inspect.isfunction(value)
        and value.__module__ == module.__name__
        and not n.startswith("_")
    ]
    assert functions == ["send"]
    assert inspect.iscoroutinefunction(module.send)
    assert list(inspect.signature(module.send).parameters) == [
        "action",
        "payload",
        "client",
        "delivery_id",
    ]
    assert getattr(workers.sinks, name) is module  # no stdlib module shadows a sink
