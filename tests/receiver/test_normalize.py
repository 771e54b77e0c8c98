"""Normalization of Etlworks webhooks into the canonical event, and body parsing. Pure."""

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.events import Event
from receiver.normalize import (
    ETL_HEADERS,
    MAX_DEPTH,
    MAX_ID,
    Unparseable,
    UnsupportedMediaType,
    normalize,
    parse_body,
)

RECEIVED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
SENT_MS = 1714564800123
URL = "https://app.etlworks.com/rest/v1/flows/1?auditId=11225"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def norm(
    payload: Any,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    delivery_id: str | None = None,
    source: str = "etl",
) -> Event:
    if body is None:
        body = b"" if payload is None else json.dumps(payload).encode()
    event = normalize(
        source,
        payload,
        etl_headers=headers or {},
        body=body,
        received_at=RECEIVED,
        delivery_id=delivery_id,
    )
    assert_valid(event)
    return event


def assert_valid(event: Event) -> None:
    """normalize builds the event without validating it: what it builds must validate."""
    assert Event.model_validate(event.model_dump()) == event


def executed(status: str | None = "success", **entity: Any) -> dict[str, Any]:
    """A ``Flow.Executed`` webhook as Etlworks sends it."""
    body: dict[str, Any] = {
        "eventId": "evt-1",
        "eventType": "Flow.Executed",
        "webhookId": "wh-9",
        "entityId": "1",
        "entity": {"name": "orders-load", **entity},
        "entityUrl": URL,
        "timestamp": SENT_MS,
    }
    if status is not None:
        body["entity"]["status"] = status
    return body


def is_hash(event_id: str) -> bool:
    return len(event_id) == 32 and all(c in "0123456789abcdef" for c in event_id)


class TestFlowExecuted:
    def test_every_field(self) -> None:
        payload = executed("error", errorMessage="table orders is locked")
        event = norm(payload)
        assert event.model_dump() == {
            "id": "evt-1",
            "source": "etl",
            "event": "Flow.Executed",
            "kind": "flow.failed",
            "status": "error",
            "flow_id": "1",
            "flow_name": "orders-load",
            "audit_id": "11225",
            "webhook_id": "wh-9",
            "entity_id": "1",
            "entity_url": URL,
            "tags": [],
            "params": {},
            "error": "table orders is locked",
            "started_at": None,
            "finished_at": None,
            "duration_ms": None,
            "sent_at": datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC),
            "received_at": RECEIVED,
            "triggered_by": None,
            "chain_depth": 0,
            "via": None,
            "raw": payload,
        }

    @pytest.mark.parametrize(
        ("status", "kind", "normalized"),
        [
            ("success", "flow.succeeded", "success"),
            ("Success", "flow.succeeded", "success"),
            ("SUCCESS", "flow.succeeded", "success"),
            ("completed", "flow.succeeded", "success"),
            ("error", "flow.failed", "error"),
            ("Error", "flow.failed", "error"),
            ("failed", "flow.failed", "error"),
            ("warning", "flow.warning", "warning"),
            ("Success with warnings", "flow.warning", "warning"),
            ("canceled", "flow.canceled", "canceled"),
            ("cancelled", "flow.canceled", "canceled"),
            ("running", "flow.running", "running"),
            ("in-progress", "flow.running", "running"),
            ("queued", "flow.running", "queued"),
            ("pending", "flow.running", "queued"),
            ("exploded", "other", None),
        ],
    )
    def test_the_status_decides_the_kind(
        self, status: str, kind: str, normalized: str | None
    ) -> None:
        event = norm(executed(status))
        assert (event.kind, event.status) == (kind, normalized)

    def test_without_a_status_the_kind_is_other(self) -> None:
        event = norm(executed(None))
        assert (event.kind, event.status) == ("other", None)

    @pytest.mark.parametrize("name", ["flow.executed", "FLOW_EXECUTED", "Flow.Execution"])
    def test_spellings_of_the_event_name(self, name: str) -> None:
        assert norm({**executed("error"), "eventType": name}).kind == "flow.failed"

    def test_a_status_at_the_top_level_is_used_when_the_entity_has_none(self) -> None:
        payload = {**executed(None), "status": "warning"}
        assert norm(payload).kind == "flow.warning"

    def test_the_entity_may_be_a_json_string(self) -> None:
        payload = {**executed(None), "entity": json.dumps({"status": "error", "flowId": 5})}
        event = norm(payload)
        assert (event.kind, event.flow_id) == ("flow.failed", "5")

    def test_ids_in_the_entity_win_over_the_url(self) -> None:
        event = norm(executed("success", flowId=77, auditId="a-5", flowName="named"))
        assert (event.flow_id, event.audit_id, event.flow_name) == ("77", "a-5", "named")

    @pytest.mark.parametrize(
        ("url", "flow_id", "audit_id"),
        [
            (URL, "1", "11225"),
            ("https://x/rest/v1/flows/42", "42", None),
            ("https://x/rest/v1/flows/42?foo=1&auditId=a7&bar=2", "42", "a7"),
            ("https://x/rest/v1/flows/42?auditId=a7#frag", "42", "a7"),
            ("https://x/rest/v1/connections/3", None, None),
            ("", None, None),
        ],
    )
    def test_ids_from_the_entity_url(
        self, url: str, flow_id: str | None, audit_id: str | None
    ) -> None:
        entity = {"status": "success"}
        event = norm({"eventType": "Flow.Executed", "entity": entity, "entityUrl": url})
        assert (event.flow_id, event.audit_id) == (flow_id, audit_id)

    def test_headers_win_over_the_body(self) -> None:
        headers = {
            "event": "Flow.Executed",
            "id": "wh-header",
            "entity-id": "2",
            "entity-url": "https://x/rest/v1/flows/2?auditId=99",
        }
        event = norm(executed("success"), headers=headers)
        assert (event.webhook_id, event.entity_id, event.flow_id, event.audit_id) == (
            "wh-header",
            "2",
            "2",
            "99",
        )
        assert event.entity_url == "https://x/rest/v1/flows/2?auditId=99"


class TestFlowFailedStyle:
    @pytest.mark.parametrize(
        ("name", "kind", "status"),
        [
            ("FLOW_FAILED", "flow.failed", "error"),
            ("FLOW_ERROR", "flow.failed", "error"),
            ("FLOW_SUCCESS", "flow.succeeded", "success"),
            ("FLOW_SUCCEEDED", "flow.succeeded", "success"),
            ("FLOW_COMPLETED", "flow.succeeded", "success"),
            ("FLOW_WARNING", "flow.warning", "warning"),
            ("FLOW_CANCELED", "flow.canceled", "canceled"),
            ("FLOW_CANCELLED", "flow.canceled", "canceled"),
            ("FLOW_STARTED", "flow.running", "running"),
            ("FLOW_RUNNING", "flow.running", "running"),
            ("FLOW_TIMEOUT", "flow.timeout", None),
            ("flow-failed", "flow.failed", "error"),
            ("Flow.Failed", "flow.failed", "error"),
        ],
    )
    def test_the_name_says_the_outcome(self, name: str, kind: str, status: str | None) -> None:
        event = norm({"eventType": name, "flowId": 12345, "flowName": "orders"})
        assert (event.event, event.kind, event.status) == (name, kind, status)
        assert (event.flow_id, event.flow_name) == ("12345", "orders")

    def test_a_status_given_is_kept(self) -> None:
        event = norm({"eventType": "FLOW_SUCCESS", "status": "warning"})
        assert (event.kind, event.status) == ("flow.succeeded", "warning")

    @pytest.mark.parametrize("key", ["eventType", "event", "eventName", "type"])
    def test_where_the_name_is_found(self, key: str) -> None:
        assert norm({key: "FLOW_FAILED"}).kind == "flow.failed"

    def test_snake_case_fields(self) -> None:
        event = norm({"event": "FLOW_FAILED", "flow_id": "9", "flow_name": "x", "audit_id": "7"})
        assert (event.flow_id, event.flow_name, event.audit_id) == ("9", "x", "7")

    def test_a_form_encoded_delivery(self) -> None:
        body = (
            b"eventType=FLOW_FAILED&flowId=12345&flowName=orders+load"
            b"&errorMessage=disk+full&tags=a%2Cb"
            b"&params=%7B%22runDate%22%3A%222024-05-01%22%7D"
        )
        event = norm(parse_body(FORM, body), body=body)
        assert (event.kind, event.flow_id, event.flow_name, event.error) == (
            "flow.failed",
            "12345",
            "orders load",
            "disk full",
        )
        assert event.tags == ["a", "b"]
        assert event.params == {"runDate": "2024-05-01"}


class TestTagsAndParams:
    @pytest.mark.parametrize(
        ("tags", "expected"),
        [
            (["nightly", " finance ", ""], ["nightly", "finance"]),
            ("nightly, finance,,  ", ["nightly", "finance"]),
            ("nightly", ["nightly"]),
            ([{"name": "nightly"}, {"id": 3}, 7, None, True], ["nightly", "7"]),
            ([], []),
            ({"nightly": True}, []),
            (5, []),
        ],
    )
    def test_tags(self, tags: Any, expected: list[str]) -> None:
        assert norm(executed("success", tags=tags)).tags == expected

    def test_flow_tags_at_the_top_level(self) -> None:
        assert norm({"eventType": "FLOW_FAILED", "flowTags": "a,b"}).tags == ["a", "b"]

    @pytest.mark.parametrize(
        ("params", "expected"),
        [
            (
                {"runDate": "2024-05-01", "n": 5, "on": True, "none": None, "list": [1]},
                {"runDate": "2024-05-01", "n": "5", "on": "true", "none": "null", "list": "[1]"},
            ),
            (
                [{"name": "a", "value": "1"}, {"name": "b", "value": 2}, {"value": "x"}, "junk"],
                {"a": "1", "b": "2"},
            ),
            ('{"runDate": "2024-05-01"}', {"runDate": "2024-05-01"}),
            ('[{"name": "a", "value": "1"}]', {"a": "1"}),
            ("{not json", {}),
            ("runDate=2024-05-01", {}),
            (42, {}),
        ],
    )
    def test_params(self, params: Any, expected: dict[str, str]) -> None:
        assert norm(executed("success", params=params)).params == expected

    @pytest.mark.parametrize("key", ["parameters", "runParameters"])
    def test_other_names_for_params(self, key: str) -> None:
        assert norm(executed("success", **{key: {"a": "1"}})).params == {"a": "1"}


class TestError:
    @pytest.mark.parametrize(
        ("status", "shown"),
        [
            ("error", True),
            ("warning", True),
            ("canceled", True),
            ("success", False),
            ("running", False),
            ("queued", False),
        ],
    )
    def test_only_for_runs_that_did_not_succeed(self, status: str, shown: bool) -> None:
        event = norm(executed(status, error="boom"))
        assert event.error == ("boom" if shown else None)

    @pytest.mark.parametrize("key", ["error", "errorMessage", "exception", "exceptionMessage"])
    def test_where_the_error_is_found(self, key: str) -> None:
        assert norm({"eventType": "FLOW_FAILED", key: " boom "}).error == "boom"

    def test_a_success_event_name_hides_the_error_too(self) -> None:
        assert norm({"eventType": "FLOW_SUCCESS", "error": "stale"}).error is None

    def test_an_error_that_is_not_text_is_dropped(self) -> None:
        assert norm({"eventType": "FLOW_FAILED", "error": {"code": 1}}).error is None


T0 = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5, milliseconds=250)


class TestTimes:
    @pytest.mark.parametrize(
        ("started", "finished"),
        [
            (int(T0.timestamp() * 1000), int(T1.timestamp() * 1000)),
            (str(int(T0.timestamp() * 1000)), str(int(T1.timestamp() * 1000))),
            (T0.timestamp(), T1.timestamp()),
            ("2024-05-01T10:00:00Z", "2024-05-01T10:05:00.250Z"),
            ("2024-05-01T10:00:00+00:00", "2024-05-01T10:05:00.250000+00:00"),
            ("2024-05-01T12:00:00+02:00", "2024-05-01T12:05:00.25+02:00"),
            ("2024-05-01 10:00:00", "2024-05-01 10:05:00.250"),
        ],
        ids=["ms", "ms text", "seconds", "iso z", "iso utc", "iso offset", "iso naive"],
    )
    def test_start_and_finish(self, started: Any, finished: Any) -> None:
        event = norm(executed("success", started=started, finished=finished))
        assert event.started_at == T0
        assert event.finished_at == T1
        assert event.duration_ms == 300250

    def test_a_time_with_an_offset_keeps_it(self) -> None:
        event = norm(executed("success", startedAt="2024-05-01T12:00:00+02:00"))
        assert event.started_at is not None
        assert event.started_at.utcoffset() == timedelta(hours=2)
        assert event.started_at == T0

    def test_whole_seconds_epoch(self) -> None:
        event = norm(executed("success", startTime=1714557600, endTime="1714557660"))
        assert (event.started_at, event.finished_at) == (T0, T0 + timedelta(minutes=1))
        assert event.duration_ms == 60000

    @pytest.mark.parametrize(
        ("duration", "expected"),
        [(1234, 1234), ("1234", 1234), (12.9, 12), (-5, 300250), ("²", 300250), (True, 300250)],
    )
    def test_a_duration_given_wins(self, duration: Any, expected: int) -> None:
        entity = {"started": T0.isoformat(), "finished": T1.isoformat(), "durationMs": duration}
        assert norm(executed("success", **entity)).duration_ms == expected

    def test_no_duration_when_finished_before_started(self) -> None:
        event = norm(executed("success", started=T1.isoformat(), finished=T0.isoformat()))
        assert event.duration_ms is None

    @pytest.mark.parametrize(
        "value",
        ["yesterday", "", "²", "1e3", True, 10**30, -(10**30), float("nan"), [], {"t": 1}],
    )
    def test_unreadable_times_are_none(self, value: Any) -> None:
        event = norm(executed("success", started=value, finished=value))
        assert (event.started_at, event.finished_at, event.duration_ms) == (None, None, None)

    @pytest.mark.parametrize(
        ("timestamp", "sent_at"),
        [
            (SENT_MS, datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)),
            (1714564800, datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)),
            ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)),
            (None, None),
            ("garbage", None),
        ],
    )
    def test_sent_at_from_the_timestamp(self, timestamp: Any, sent_at: datetime | None) -> None:
        assert norm({**executed("success"), "timestamp": timestamp}).sent_at == sent_at

    def test_received_at_is_what_the_caller_says(self) -> None:
        other = datetime(2030, 1, 1, tzinfo=timezone(timedelta(hours=-5)))
        event = normalize("etl", {}, etl_headers={}, body=b"{}", received_at=other)
        assert event.received_at == other


class TestGetDeliveries:
    def test_only_headers(self) -> None:
        headers = {
            "event-id": "get-1",
            "event": "FLOW_FAILED",
            "id": "wh-1",
            "entity-id": "5",
            "entity-url": "https://app.etlworks.com/rest/v1/flows/5?auditId=9",
        }
        event = norm(None, headers=headers)
        assert (event.id, event.event, event.kind, event.status) == (
            "get-1",
            "FLOW_FAILED",
            "flow.failed",
            "error",
        )
        assert (event.flow_id, event.audit_id, event.webhook_id, event.entity_id) == (
            "5",
            "9",
            "wh-1",
            "5",
        )
        assert event.raw is None
        assert event.sent_at is None

    def test_without_an_event_id_the_headers_are_hashed(self) -> None:
        headers = {"event": "Flow.Executed", "entity-url": URL}
        first = norm(None, headers=headers)
        assert is_hash(first.id)
        assert norm(None, headers=dict(headers)).id == first.id
        assert norm(None, headers={**headers, "entity-id": "2"}).id != first.id
        assert norm(None, headers=headers, source="other").id != first.id

    def test_nothing_at_all(self) -> None:
        event = norm(None)
        assert (event.event, event.kind, event.status, event.raw) == (
            "unknown",
            "other",
            None,
            None,
        )
        assert is_hash(event.id)


class TestOtherEvents:
    @pytest.mark.parametrize(
        "name",
        [
            "Flow.Created",
            "Flow.Updated",
            "Flow.Deleted",
            "Connection.Changed",
            "Schedule.Enabled",
            "Schedule.Disabled",
            "FLOW_DELETED",
        ],
    )
    def test_changes_to_resources(self, name: str) -> None:
        event = norm({"eventId": "e", "eventType": name, "entity": {"name": "orders"}})
        assert (event.kind, event.status) == ("resource.changed", None)

    def test_a_created_flow_names_the_flow(self) -> None:
        payload = {
            "eventId": "e",
            "eventType": "Flow.Created",
            "entity": {"name": "orders", "id": 5},
            "entityUrl": "https://app.etlworks.com/rest/v1/flows/5",
        }
        event = norm(payload)
        assert (event.kind, event.flow_id, event.flow_name) == ("resource.changed", "5", "orders")

    def test_a_non_flow_entity_name_is_not_a_flow_name(self) -> None:
        payload = {"eventType": "Connection.Created", "entity": {"name": "warehouse"}}
        assert norm(payload).flow_name is None

    @pytest.mark.parametrize(
        "payload",
        [
            [],
            [1, 2, {"eventId": "inner"}],
            "FLOW_FAILED",
            42,
            3.5,
            True,
            {},
            {"hello": "world"},
            {"eventType": "Something.Else"},
            {"eventType": ["FLOW_FAILED"]},
            {"eventType": True},
            {"entity": [1, 2]},
        ],
    )
    def test_unknown_shapes_are_kept_raw(self, payload: Any) -> None:
        event = norm(payload)
        assert event.kind == "other"
        assert event.raw == payload
        assert event.event in ("unknown", "Something.Else")


class TestEventId:
    @pytest.mark.parametrize(
        ("header", "payload_id", "delivery", "expected"),
        [
            ("from-header", "from-payload", "from-delivery", "from-header"),
            (None, "from-payload", "from-delivery", "from-payload"),
            (None, None, "from-delivery", "from-delivery"),
            ("  ", "from-payload", None, "from-payload"),
            (None, "", "from-delivery", "from-delivery"),
            (None, 123456, None, "123456"),
            (None, " padded ", None, "padded"),
            ("x" * MAX_ID, None, None, "x" * MAX_ID),
        ],
    )
    def test_precedence(
        self, header: str | None, payload_id: Any, delivery: str | None, expected: str
    ) -> None:
        payload: dict[str, Any] = {"eventType": "FLOW_FAILED"}
        if payload_id is not None:
            payload["eventId"] = payload_id
        headers = {"event-id": header} if header is not None else {}
        assert norm(payload, headers=headers, delivery_id=delivery).id == expected

    def test_snake_case_event_id(self) -> None:
        assert norm({"event_id": "snake"}).id == "snake"

    def test_else_a_stable_hash_of_source_and_body(self) -> None:
        payload = {"eventType": "FLOW_FAILED", "flowId": 1}
        body = json.dumps(payload).encode()
        first = norm(payload, body=body)
        assert is_hash(first.id)
        assert norm(payload, body=body).id == first.id
        assert norm(payload, body=body, source="other").id != first.id
        assert norm(payload, body=body + b" ").id != first.id

    @pytest.mark.parametrize(
        "bad",
        ["x" * (MAX_ID + 1), "evt\n1", "evt\x001", "evt\t1", "\x7f", "evt\u200b"],
        ids=["long", "newline", "nul", "tab", "del", "zero width space"],
    )
    def test_unusable_ids_are_replaced_by_the_hash(self, bad: str) -> None:
        body = b'{"eventType": "FLOW_FAILED"}'
        for event in (
            norm({"eventId": bad}, body=body),
            norm({}, headers={"event-id": bad}, body=body),
            norm({}, delivery_id=bad, body=body),
        ):
            assert is_hash(event.id)
            assert bad not in event.id
        same = norm({}, headers={"event-id": bad}, body=body)
        assert same.id == norm({}, headers={"event-id": bad}, body=body).id
        other = norm({}, headers={"event-id": bad + "2"}, body=body)
        assert other.id != same.id

    def test_the_hash_keeps_the_rejected_id_and_the_body_apart(self) -> None:
        """Two deliveries whose rejected id and body run together into the same bytes (which
        the hash once took as they were) are different events."""
        splits = [("evt\x0012", b"{}"), ("evt\x001", b"2{}")]
        assert len({given.encode() + body for given, body in splits}) == 1
        ids = [norm({}, headers={"event-id": given}, body=body).id for given, body in splits]
        assert all(is_hash(event_id) for event_id in ids)
        assert ids[0] != ids[1]

    def test_the_hash_keeps_a_body_apart_from_the_headers_hashed_without_one(self) -> None:
        headers = {"event": "Flow.Executed", "entity-url": URL}
        without_body = norm(None, headers=headers)
        as_body = json.dumps(sorted(headers.items())).encode()
        assert norm(None, headers=headers, body=as_body).id != without_body.id

    def test_a_lone_surrogate_does_not_break_the_event(self) -> None:
        payload = {"eventId": "evt-\ud800", "eventType": "FLOW_FAILED\udfff", "flowName": "\ud800"}
        event = norm(payload, body=b"{}")
        assert event.id == "evt-\ufffd"
        assert event.event == "FLOW_FAILED\ufffd"
        assert event.flow_name == "\ufffd"
        json.loads(event.model_dump_json(exclude={"raw"}))


class TestParseBody:
    @pytest.mark.parametrize(
        "content_type",
        [
            JSON,
            "application/json; charset=utf-8",
            "Application/JSON ; charset=UTF-8",
            "application/vnd.etlworks.webhook+json",
            "application/cloudevents+json; charset=utf-8",
        ],
    )
    def test_json(self, content_type: str) -> None:
        assert parse_body(content_type, b'{"a": [1, "\\u00e9"]}') == {"a": [1, "é"]}

    @pytest.mark.parametrize(
        ("body", "expected"),
        [(b"[1, 2]", [1, 2]), (b'"text"', "text"), (b"42", 42), (b"null", None)],
    )
    def test_json_that_is_no_object(self, body: bytes, expected: Any) -> None:
        assert parse_body(JSON, body) == expected

    def test_json_is_utf8_only(self) -> None:
        # RFC 8259: JSON between systems is UTF-8; Etlworks sends UTF-8.
        assert parse_body(JSON, '{"a": "é"}'.encode()) == {"a": "é"}
        with pytest.raises(Unparseable):
            parse_body(JSON, '{"a": "é"}'.encode("utf-16"))

    def test_utf8_encoded_surrogates_are_refused(self) -> None:
        with pytest.raises(Unparseable):
            parse_body(JSON, b'{"a": "\xed\xa0\x80"}')

    @pytest.mark.parametrize("content_type", [FORM, f"{FORM}; charset=utf-8", FORM.upper()])
    def test_form_data(self, content_type: str) -> None:
        body = b"eventType=FLOW_FAILED&tag=a&tag=b&empty=&name=orders+load%21&caf%C3%A9=%C3%A9"
        assert parse_body(content_type, body) == {
            "eventType": "FLOW_FAILED",
            "tag": ["a", "b"],
            "empty": "",
            "name": "orders load!",
            "café": "é",
        }

    @pytest.mark.parametrize(
        ("content_type", "body", "message"),
        [
            (JSON, b"{", "body is not valid JSON"),
            (JSON, b"not json", "body is not valid JSON"),
            (JSON, b'{"a": 1} trailing', "body is not valid JSON"),
            (JSON, b'{"a": "caf\xe9"}', "body is not valid JSON"),
            (JSON, b'{"a": "\\ud800"}', "body is not valid Unicode text"),
            (JSON, b'{"\\udfff": 1}', "body is not valid Unicode text"),
            (FORM, b"a=1&&b", "body is not valid form data"),
            (FORM, b"novalue", "body is not valid form data"),
            (FORM, b"a=caf\xe9", "body is not valid form data"),
            (FORM, b"a=caf%E9", "body is not valid form data"),
            (FORM, b"a=%ED%A0%80", "body is not valid form data"),
        ],
    )
    def test_unparseable(self, content_type: str, body: bytes, message: str) -> None:
        with pytest.raises(Unparseable, match=f"^{message}$"):
            parse_body(content_type, body)

    @pytest.mark.parametrize(
        ("content_type", "media"),
        [
            ("text/plain", "text/plain"),
            ("application/xml; charset=utf-8", "application/xml"),
            ("multipart/form-data; boundary=x", "multipart/form-data"),
            ("application/jsonp", "application/jsonp"),
            ("", "no content type"),
            (None, "no content type"),
        ],
    )
    def test_unsupported_media_types(self, content_type: str | None, media: str) -> None:
        with pytest.raises(UnsupportedMediaType) as caught:
            parse_body(content_type, b'{"a": 1}')
        assert str(caught.value) == media

    @pytest.mark.parametrize("content_type", [JSON, FORM, "text/plain", None])
    def test_an_empty_body_is_none(self, content_type: str | None) -> None:
        assert parse_body(content_type, b"") is None

    def test_nesting_up_to_max_depth(self) -> None:
        lists = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
        assert parse_body(JSON, lists) is not None
        objects = b'{"a":' * (MAX_DEPTH - 1) + b"1" + b"}" * (MAX_DEPTH - 1)
        assert parse_body(JSON, objects) is not None

    @pytest.mark.parametrize(
        "body",
        [
            b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1),
            b"[" * MAX_DEPTH + b"1" + b"]" * MAX_DEPTH,
            b'{"a":' * MAX_DEPTH + b"1" + b"}" * MAX_DEPTH,
            b"[" * 1000 + b"]" * 1000,
            b"[" * 100000 + b"]" * 100000,
        ],
        ids=["lists", "scalar inside lists", "objects", "far deeper", "past the recursion limit"],
    )
    def test_nesting_deeper_than_max_depth(self, body: bytes) -> None:
        with pytest.raises(Unparseable, match=f"^body nests deeper than {MAX_DEPTH} levels$"):
            parse_body(JSON, body)


KEYS = [
    "eventId",
    "event_id",
    "eventType",
    "event",
    "type",
    "webhookId",
    "entityId",
    "entity",
    "entityUrl",
    "timestamp",
    "status",
    "flowId",
    "flowName",
    "auditId",
    "tags",
    "flowTags",
    "params",
    "parameters",
    "error",
    "started",
    "finished",
    "startTime",
    "durationMs",
    "duration",
    "name",
    "value",
]
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.sampled_from(["FLOW_FAILED", "Flow.Executed", "error", "success", URL, "1,2", "{}"])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), children, max_size=6)
    ),
    max_leaves=25,
)
etl_headers = st.dictionaries(
    st.sampled_from(ETL_HEADERS) | st.text(max_size=8),
    st.text() | st.sampled_from(["FLOW_FAILED", URL, "x" * 300]),
    max_size=6,
)


@settings(deadline=None, max_examples=300)
@given(
    payload=json_values,
    headers=etl_headers,
    body=st.binary(max_size=64),
    delivery_id=st.none() | st.text(),
    source=st.text(min_size=1, max_size=20),
)
def test_normalize_never_raises(
    payload: Any, headers: dict[str, str], body: bytes, delivery_id: str | None, source: str
) -> None:
    event = normalize(
        source,
        payload,
        etl_headers=headers,
        body=body,
        received_at=RECEIVED,
        delivery_id=delivery_id,
    )
    assert 0 < len(event.id) <= MAX_ID
    assert event.id.isprintable()
    assert event.raw is payload
    assert_valid(event)
    event.model_dump_json()


@pytest.mark.parametrize("given", [1e400, 9007199254740993.0, True, [1], {"a": 1}])
def test_only_text_or_whole_numbers_are_ids(given: Any) -> None:
    """Floats round (1e400 and 1e401 would share the id "inf"): they fall back to the hash."""
    body = json.dumps({"eventId": given}).encode()
    event = norm({"eventId": given}, body=body)
    assert event.id != str(given)
    assert len(event.id) == 32


def test_a_whole_number_id_is_kept() -> None:
    assert norm({"eventId": 12345}).id == "12345"
