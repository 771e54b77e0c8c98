"""The receiver stores events without building the ``Event`` model and parses JSON with
pydantic's parser; both must come out exactly as the model and ``json.loads`` would have it."""

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.events import Event, dump_json
from receiver.normalize import ETL_HEADERS, MAX_DEPTH, Unparseable, fields, normalize, parse_body

KEYS = [
    "eventId",
    "eventType",
    "entity",
    "entityUrl",
    "timestamp",
    "status",
    "flowId",
    "flowName",
    "auditId",
    "started",
    "finished",
    "startTime",
    "durationMs",
    "tags",
    "params",
    "error",
    "exception",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(10**60), 10**60),
    st.floats(),  # inf and nan included: the model writes them as null
    st.text(),
    st.sampled_from(["1764000000000", "2026-11-29T12:00:00+02:00", "FLOW_FAILED", "error", ""]),
)
TREES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=30,
)
PAYLOADS = TREES | st.dictionaries(st.sampled_from(KEYS), TREES, max_size=10)
HEADERS = st.dictionaries(st.sampled_from(ETL_HEADERS), st.text(max_size=40), max_size=5)
RECEIVED = st.datetimes(timezones=st.just(UTC)) | st.datetimes(
    timezones=st.builds(timezone, st.integers(-900, 900).map(lambda m: timedelta(minutes=m)))
)


@settings(max_examples=400, deadline=None)
@given(
    payload=PAYLOADS,
    headers=HEADERS,
    body=st.binary(max_size=32),
    received_at=RECEIVED,
    delivery_id=st.none() | st.text(max_size=20),
)
def test_the_stored_bytes_are_the_models(
    payload: Any,
    headers: dict[str, str],
    body: bytes,
    received_at: datetime,
    delivery_id: str | None,
) -> None:
    options: dict[str, Any] = {
        "etl_headers": headers,
        "body": body,
        "received_at": received_at,
        "delivery_id": delivery_id,
    }
    values = fields("etl", payload, **options)
    event = normalize("etl", payload, **options)
    assert list(values) == list(Event.model_fields)
    assert Event.model_construct(**values) == event
    assert dump_json(values) == event.model_dump_json().encode()


def test_infinite_and_huge_numbers_are_stored_as_the_model_stores_them() -> None:
    payload = {"a": [float("inf"), float("-inf"), float("nan"), 10**40, -(10**30), 1e16, 0.1]}
    values = fields("etl", payload, etl_headers={}, body=b"{}", received_at=datetime.now(UTC))
    event = Event.model_construct(**values)
    assert dump_json(values) == event.model_dump_json().encode()
    assert b'"raw":{"a":[null,null,null,10000000000000000000000000000000000000000,' in (
        dump_json(values)
    )


def reference(body: bytes) -> Any:
    """parse_body's contract for JSON, from json.loads: strict UTF-8, nesting of at most
    MAX_DEPTH levels, no lone surrogates anywhere."""
    try:
        value = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        raise Unparseable("json.loads refuses it") from None
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if level > MAX_DEPTH:
            raise Unparseable("too deep")
        if isinstance(item, dict):
            stack += [(k, level) for k in item] + [(v, level + 1) for v in item.values()]
        elif isinstance(item, list):
            stack += [(v, level + 1) for v in item]
        elif isinstance(item, str) and any("\ud800" <= c <= "\udfff" for c in item):
            raise Unparseable("lone surrogate")
    return value


def outcome(parse: Any, body: bytes) -> str:
    """The result's repr (which tells 1 from 1.0 and -0.0 from 0.0, and shows nan), or that
    the body was refused."""
    try:
        return repr(parse(body))
    except Unparseable:
        return "refused"


ANY_CHARS = st.characters(exclude_categories=())
JSON_TEXTS = st.one_of(
    TREES.map(lambda v: json.dumps(v).encode()),
    TREES.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass")),
    st.lists(ANY_CHARS, max_size=8).map(lambda cs: json.dumps("".join(cs)).encode()),
    st.builds(
        lambda n, opener, closer: opener * n + closer * n,
        st.integers(1, 1500),
        st.sampled_from([b"[", b'{"a":']),
        st.sampled_from([b"]", b"}"]),
    ),
    st.from_regex(rb"-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,25})?([eE][-+]?[0-9]{1,4})?", fullmatch=True),
    st.sampled_from([b"NaN", b"[Infinity, -Infinity]", b'\xef\xbb\xbf{"a": 1}', b'{"a":1,"a":2}']),
    st.binary(max_size=40),
)


@settings(max_examples=500, deadline=None)
@given(
    body=st.one_of(
        JSON_TEXTS,
        st.builds(
            lambda b, at, junk: b[:at] + junk + b[at:],
            JSON_TEXTS,
            st.integers(0, 60),
            st.binary(min_size=1, max_size=2),
        ),
    )
)
def test_json_is_parsed_as_json_loads_parses_it(body: bytes) -> None:
    expected = outcome(reference, body) if body else repr(None)
    assert outcome(lambda b: parse_body("application/json", b), body) == expected


@pytest.mark.parametrize("digits", [19, 20, 40, 4300, 4301])
def test_big_integers_stay_integers(digits: int) -> None:
    body = b'{"n": ' + b"9" * digits + b"}"
    assert outcome(lambda b: parse_body("application/json", b), body) == outcome(reference, body)
