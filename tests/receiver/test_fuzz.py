"""Property tests of what crosses the trust boundary: request headers and bodies.

Pure level: ``Verifier.verify`` returns or raises :class:`Rejected`, whatever it is given, and
returns only when the request carries a valid signature. "Valid" is judged by the oracle below,
written from the contract (DESIGN.md, the Standard Webhooks spec), not from the code.

HTTP level: the real receiver (uvicorn over loopback, a real Redis) answers no 5xx to anything a
client can send, a 2xx only to a correctly signed request, and stores nothing when it refuses.

Hypothesis keeps no example database here (``database=None``), so nothing is written into the
repository.
"""

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, assume, event, given, note, settings
from hypothesis import strategies as st
from redis import Redis

from receiver.signatures import REASONS, Headers, Rejected, compile_checks
from tests.support import ENV, OLD_SECRET, SECRET, ServedApp, b64, mac, make_config
from tests.support import settings as app_settings

NOW = 1_764_000_000.0
TOLERANCE = 300
MAX_BODY = 64 * 1024
PASSWORD = ENV["PASSWORD"]
TOKEN = ENV["TOKEN"]
WHSEC_KEY = base64.b64decode(ENV["WHSEC"].removeprefix("whsec_"))
HMAC_SECRETS = (SECRET, OLD_SECRET)

CONFIG = """
sources:
  hmac:
    verify: [{hmac: {secrets: ["${SECRET}", "${OLD_SECRET}"]}}]
  hmac-ts:
    verify:
      - hmac: {algorithm: sha512, encoding: base64, timestamp_header: X-Etl-Webhook-Timestamp,
               secrets: ["${SECRET}", "${OLD_SECRET}"]}
  swh:
    verify: [{standard_webhooks: {secrets: ["${WHSEC}"]}}]
  basic:
    verify: [{basic: {username: etlworks, password: "${PASSWORD}"}}]
  token:
    verify: [{header_token: {header: X-Flowhooks-Token, token: "${TOKEN}"}}]
  chain:
    verify:
      - hmac: {prefix: "v0=", secrets: ["${SECRET}"]}
      - basic: {username: etlworks, password: "${PASSWORD}"}
"""
SOURCES = make_config(CONFIG).sources
VERIFIERS = {name: compile_checks(source.verify) for name, source in SOURCES.items()}
SIGNS_BODY = {"hmac", "hmac-ts", "swh", "chain"}

SIG = "x-etl-webhook-signature"
STAMP = "x-etl-webhook-timestamp"
TOKEN_HEADER = "x-flowhooks-token"
AUTH_NAMES = (
    SIG,
    STAMP,
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "authorization",
    TOKEN_HEADER,
)

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- the oracle: what a valid request is, from the contract -------------------------------


def one(headers: Headers, name: str) -> str | None:
    """The single value of a header, without HTTP's optional whitespace; None if not exactly one."""
    values = headers.get(name, [])
    return values[0].strip(" \t") if len(values) == 1 else None


def fresh(stamp: str, now: float, milliseconds: bool) -> bool:
    if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 20:
        return False
    number = int(stamp)
    seconds = number / 1000 if milliseconds and number > 10**12 else number
    return now - TOLERANCE <= seconds <= now + TOLERANCE


def carries(value: str, digest: bytes, encoding: str) -> bool:
    """Whether ``value`` holds ``digest``: its hex (any case), or its base64 up to the last
    group (whose unused bits a lenient decoder may ignore)."""
    if encoding == "hex":
        return digest.hex() in value.lower()
    return b64(digest)[:-4] in value


def hmac_ok(headers: Headers, body: bytes) -> bool:
    value = one(headers, SIG)
    return value is not None and any(carries(value, mac(k, body), "hex") for k in HMAC_SECRETS)


def hmac_ts_ok(headers: Headers, body: bytes, now: float) -> bool:
    value, stamp = one(headers, SIG), one(headers, STAMP)
    if value is None or stamp is None or not fresh(stamp, now, milliseconds=True):
        return False
    signed = stamp.encode() + b"." + body
    return any(carries(value, mac(k, signed, "sha512"), "base64") for k in HMAC_SECRETS)


def swh_ok(headers: Headers, body: bytes, now: float) -> bool:
    msg_id, stamp = one(headers, "webhook-id"), one(headers, "webhook-timestamp")
    signatures = one(headers, "webhook-signature")
    if msg_id is None or stamp is None or signatures is None:
        return False
    if not fresh(stamp, now, milliseconds=False):
        return False
    try:
        signed = msg_id.encode("latin-1") + f".{stamp}.".encode() + body
    except UnicodeEncodeError:
        return False
    expected = "v1," + b64(mac(WHSEC_KEY, signed))[:-4]
    return any(part.startswith(expected) for part in signatures.split(" "))


def basic_ok(headers: Headers) -> bool:
    value = one(headers, "authorization")
    if value is None or value[:6].lower() != "basic ":
        return False
    try:
        given = base64.b64decode(value[6:])  # lenient: accepts more than the code under test
    except ValueError:
        return False
    return given == f"etlworks:{PASSWORD}".encode()


def token_ok(headers: Headers) -> bool:
    return one(headers, TOKEN_HEADER) == TOKEN


def chain_ok(headers: Headers, body: bytes) -> bool:
    value = one(headers, SIG)
    return value is not None and carries(value, mac(SECRET, body), "hex") and basic_ok(headers)


def valid(source: str, headers: Headers, body: bytes, now: float) -> bool:
    checks: dict[str, Callable[[], bool]] = {
        "hmac": lambda: hmac_ok(headers, body),
        "hmac-ts": lambda: hmac_ts_ok(headers, body, now),
        "swh": lambda: swh_ok(headers, body, now),
        "basic": lambda: basic_ok(headers),
        "token": lambda: token_ok(headers),
        "chain": lambda: chain_ok(headers, body),
    }
    return checks[source]()


# --- strategies -----------------------------------------------------------------------------

ANY_CHAR = st.characters(exclude_categories=())  # lone surrogates too: the API takes any str
ANY_TEXT = st.text(ANY_CHAR, max_size=40)
LONG_TEXT = st.builds(
    lambda part, times: part * times,
    st.text(ANY_CHAR, min_size=1, max_size=4),
    st.integers(1_000, 30_000),
)
WIRE_CHAR = st.characters(
    codec="latin-1",
    exclude_categories=["Cc"],
    include_characters=[chr(c) for c in range(0x80, 0xA0)],
)
"""What a header value can be made of on the wire (obs-text included), as the server decodes it."""
WIRE_TEXT = st.text(WIRE_CHAR, max_size=40).map(lambda text: text.strip(" \t"))
B64_CHARS = "ABCDEFabcdef0123456789+/="
SIGNATURE_PARTS = st.one_of(  # without spaces: Standard Webhooks separates signatures by them
    st.text("0123456789abcdefABCDEF", max_size=130),
    st.text(B64_CHARS, max_size=90),
    st.text("0123456789abcdef", max_size=130).map("sha256={}".format),
    st.text(B64_CHARS, max_size=90).map("v1,{}".format),
    st.text(B64_CHARS, max_size=90).map("v2,{}".format),
    st.text("0123456789.-", max_size=20),
    st.integers(-(10**14), 10**14).map(str),
)
SIGNATURE_LIKE = SIGNATURE_PARTS | st.text(B64_CHARS, max_size=60).map("Basic {}".format)
HEADER_VALUES = st.one_of(ANY_TEXT, LONG_TEXT, SIGNATURE_LIKE)
HEADER_MAPS = st.dictionaries(
    st.sampled_from(AUTH_NAMES) | ANY_TEXT | LONG_TEXT,
    st.lists(HEADER_VALUES, max_size=3),
    max_size=8,
)
BODIES = st.binary(max_size=200) | st.sampled_from([b"", b"{}", b"null"])


@st.composite
def mutated(draw: st.DrawFn, value: str, alphabet: st.SearchStrategy[str]) -> str:
    """``value`` edited the way a forger, a proxy or a bug might edit it."""
    how = draw(
        st.sampled_from(
            ["replace", "insert", "delete", "truncate", "extend", "case", "wrap", "other"]
        )
    )
    at = draw(st.integers(0, len(value)))
    if how == "replace":
        return value[:at] + draw(alphabet) + value[at + 1 :]
    if how == "insert":
        return value[:at] + draw(alphabet) + value[at:]
    if how == "delete":
        return value[:at] + value[at + 1 :]
    if how == "truncate":
        return value[:at]
    if how == "extend":
        return value + draw(alphabet)
    if how == "case":
        return value.swapcase()
    if how == "wrap":
        return draw(alphabet) + value + draw(alphabet)
    return draw(alphabet)


@st.composite
def signed_headers(draw: st.DrawFn, source: str, body: bytes, now: float) -> dict[str, str]:
    """Headers that correctly sign ``body`` for ``source`` at ``now``, in one of the forms
    the contract allows; computed here, not by the code under test."""
    out: dict[str, str] = {}
    if source in ("hmac", "chain"):
        secret = SECRET if source == "chain" else draw(st.sampled_from(HMAC_SECRETS))
        prefixes = ["", "v0=", "V0="] if source == "chain" else ["", "sha256=", "SHA256="]
        hexed = mac(secret, body).hex()
        out[SIG] = draw(st.sampled_from(prefixes)) + draw(st.sampled_from([hexed, hexed.upper()]))
    if source == "hmac-ts":
        offset = draw(st.integers(-TOLERANCE + 1, TOLERANCE - 1))  # truncation stays inside
        scale = draw(st.sampled_from([1, 1000]))
        stamp = str(int((now + offset) * scale))
        secret = draw(st.sampled_from(HMAC_SECRETS))
        out[STAMP] = stamp
        out[SIG] = b64(mac(secret, stamp.encode() + b"." + body, "sha512"))
    if source == "swh":
        msg_id = draw(st.text(WIRE_CHAR, min_size=1, max_size=30).map(lambda t: t.strip(" \t")))
        assume(msg_id)
        stamp = str(int(now) + draw(st.integers(-TOLERANCE + 1, TOLERANCE - 1)))
        good = "v1," + b64(mac(WHSEC_KEY, msg_id.encode("latin-1") + f".{stamp}.".encode() + body))
        others = draw(st.lists(SIGNATURE_PARTS.filter(bool), max_size=2))
        parts = draw(st.permutations([good, *others]))
        out |= {
            "webhook-id": msg_id,
            "webhook-timestamp": stamp,
            "webhook-signature": " ".join(parts),
        }
    if source in ("basic", "chain"):
        scheme = draw(st.sampled_from(["Basic", "basic", "BASIC"]))
        out["authorization"] = f"{scheme} {b64(f'etlworks:{PASSWORD}'.encode())}"
    if source == "token":
        out[TOKEN_HEADER] = TOKEN
    return out


@dataclass(frozen=True)
class Tampered:
    headers: dict[str, list[str]]
    pristine: bool
    """No header was touched: the request is as correctly signed as it was built."""


@st.composite
def tampered(
    draw: st.DrawFn, headers: dict[str, str], alphabet: st.SearchStrategy[str]
) -> Tampered:
    """Each header kept, edited, dropped, repeated or replaced."""
    out: dict[str, list[str]] = {}
    pristine = True
    for name, value in headers.items():
        how = draw(st.sampled_from(["keep", "keep", "keep", "edit", "drop", "repeat", "replace"]))
        pristine = pristine and how == "keep"
        if how == "keep":
            out[name] = [value]
        elif how == "edit":
            out[name] = [draw(mutated(value, alphabet))]
        elif how == "repeat":
            out[name] = [value, draw(st.just(value) | mutated(value, alphabet))]
        elif how == "replace":
            out[name] = [draw(alphabet)]
    return Tampered(out, pristine)


# --- (a) the pure verifier ------------------------------------------------------------------


@FUZZ
@given(headers=HEADER_MAPS, body=BODIES, now=st.floats())
def test_arbitrary_headers_are_only_ever_rejected(
    headers: Headers, body: bytes, now: float
) -> None:
    for name, verifier in VERIFIERS.items():
        with pytest.raises(Rejected) as info:  # anything else escaping fails the test
            verifier.verify(headers, body, now)
        assert info.value.reason in REASONS, name


@FUZZ
@given(
    source=st.sampled_from(sorted(SOURCES)),
    body=BODIES,
    data=st.data(),
)
def test_only_a_valid_signature_verifies(source: str, body: bytes, data: st.DataObject) -> None:
    now = data.draw(st.floats(NOW - 2 * TOLERANCE, NOW + 2 * TOLERANCE) | st.just(NOW), "now")
    signed_at = data.draw(st.just(now) | st.floats(NOW - 900, NOW + 900), "signed_at")
    alphabet = data.draw(st.sampled_from([ANY_TEXT, SIGNATURE_LIKE, WIRE_TEXT]), "alphabet")
    attempt = data.draw(tampered(data.draw(signed_headers(source, body, signed_at)), alphabet))
    sent = data.draw(st.just(body) | BODIES, "body sent")
    try:
        passed = VERIFIERS[source].verify(attempt.headers, sent, now)
    except Rejected as rejected:
        note(f"rejected: {rejected}")
        event(f"{source}: {rejected.reason}")
        assert rejected.reason in REASONS
        assert not (attempt.pristine and sent == body and signed_at == now)
        return
    event(f"{source}: passed")
    assert len(passed) == len(SOURCES[source].verify)
    assert valid(source, attempt.headers, sent, now)


# --- (b) the receiver over HTTP -------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    app: ServedApp
    redis: Redis
    client: httpx.Client


@pytest.fixture(scope="module")
def served(redis_url: str) -> Iterator[Served]:
    """One receiver for the whole module (not one per example), its clock fixed at NOW."""
    config = make_config(CONFIG)
    with (
        ServedApp(
            app_settings(redis_url, max_body_bytes=MAX_BODY), config, clock=lambda: NOW
        ) as app,
        httpx.Client(base_url=app.url, timeout=30) as client,
    ):
        redis = Redis.from_url(redis_url)
        try:
            yield Served(app, redis, client)
        finally:
            redis.close()


ETL_KEYS = [
    "eventId",
    "eventType",
    "event",
    "webhookId",
    "entityId",
    "entity",
    "entityUrl",
    "timestamp",
    "status",
    "executionStatus",
    "flowId",
    "flowName",
    "name",
    "auditId",
    "started",
    "finished",
    "startTime",
    "durationMs",
    "duration",
    "tags",
    "params",
    "parameters",
    "error",
    "exception",
]
TRICKY = [
    "²",
    "١٢٣",
    " 17 ",
    "1764000000000",
    "99999999999999999999999",
    "2026-11-29T12:00:00",
    "2026-13-45T99:99",
    "FLOW_FAILED",
    "Flow.Executed",
    "error",
    "success",
    "https://app.etlworks.com/rest/v1/flows/12?auditId=9",
    '{"status": "error", "flowId": 3}',
    '[{"name": "a", "value": 1}]',
    '{"a": ' * 50,
    "a,b,,c",
    "",
    "\ud800",  # JSON can escape a lone surrogate, which no UTF-8 encoder takes
    "flow \udfff",
    '{"status": "\\ud800"}',
]
NUMBERISH = st.text("0123456789 ²³¹①١٣", min_size=1, max_size=14)
"""Digits as str.isdigit() sees them, which int() does not always take."""
SCALARS = st.one_of(
    NUMBERISH,
    st.none(),
    st.booleans(),
    st.integers(),
    st.builds(
        lambda digits, sign: sign * int("9" * digits),
        st.integers(19, 4000),
        st.sampled_from([1, -1]),
    ),
    st.floats(),
    st.text(ANY_CHAR, max_size=30),
    st.sampled_from(TRICKY),
    st.sampled_from(TRICKY),
)
JSON_TREES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(ETL_KEYS) | st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=25,
)
FIELDS = st.fixed_dictionaries({}, optional=dict.fromkeys(ETL_KEYS, SCALARS | JSON_TREES))
"""Etlworks-shaped: each known field present or not, holding anything."""
PAYLOADS = FIELDS | st.builds(lambda top, entity: {**top, "entity": entity}, FIELDS, FIELDS)
JSON_VALUES = JSON_TREES | PAYLOADS
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def insert(body: bytes, at: int, what: bytes) -> bytes:
    at = min(at, len(body))
    return body[:at] + what + body[at:]


JSON_BODIES = JSON_VALUES.map(lambda value: json.dumps(value).encode())
BODY_SHAPES = st.one_of(
    st.tuples(JSON_BODIES, st.just(JSON)),
    st.tuples(  # raw UTF-8 (lone surrogates make it invalid UTF-8)
        JSON_VALUES.map(
            lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass")
        ),
        st.just(JSON),
    ),
    st.tuples(  # malformed JSON: cut short, or with a stray byte
        st.builds(lambda b, n: b[:n], JSON_BODIES, st.integers(0, 200))
        | st.builds(insert, JSON_BODIES, st.integers(0, 200), st.binary(min_size=1, max_size=2)),
        st.just(JSON),
    ),
    st.tuples(  # invalid UTF-8 inside otherwise good JSON
        st.builds(insert, JSON_BODIES, st.integers(0, 200), st.sampled_from([b"\xff", b"\xc3"])),
        st.just(JSON),
    ),
    st.tuples(  # deep nesting, balanced or not
        st.builds(
            lambda n, opener, closer, balanced: opener * n + (closer * n if balanced else b""),
            st.integers(1, 5000),
            st.sampled_from([b"[", b'{"entity":']),
            st.sampled_from([b"]", b"}"]),
            st.booleans(),
        ),
        st.just(JSON),
    ),
    st.tuples(  # huge numbers
        st.builds(lambda n: b'{"timestamp": ' + b"9" * n + b"}", st.integers(1, 6000))
        | st.sampled_from(
            [b"1e999999", b'{"durationMs": 1e400}', b'{"timestamp": -1e308}', b"-0.0e-99999"]
        ),
        st.just(JSON),
    ),
    st.tuples(  # form-encoded, well-formed or not
        st.dictionaries(st.sampled_from(ETL_KEYS) | st.text(max_size=8), st.text(max_size=20)).map(
            lambda fields: urlencode(fields).encode()
        )
        | st.text("ab=&%zZ+;19\u00e9", max_size=40).map(lambda t: t.encode())
        | st.binary(max_size=60),
        st.just(FORM),
    ),
    st.tuples(st.binary(max_size=300), st.sampled_from([JSON, FORM, "application/octet-stream"])),
    st.tuples(st.just(b"x" * (MAX_BODY + 1)), st.just(JSON)),
)
ETLWORKS_SHAPES = st.one_of(
    st.tuples(PAYLOADS.map(lambda value: json.dumps(value).encode()), st.just(JSON)),
    st.tuples(
        st.fixed_dictionaries({}, optional=dict.fromkeys(ETL_KEYS, NUMBERISH | st.text())).map(
            lambda fields: urlencode(fields, encoding="utf-8", errors="surrogatepass").encode()
        ),
        st.just(FORM),
    ),
)
"""Bodies shaped like Etlworks' own, with the content type they are sent with."""
CONTENT_TYPES = st.one_of(
    st.none(),
    st.sampled_from(
        [JSON, f"{JSON}; charset=utf-8", "APPLICATION/JSON", "application/cloudevents+json", FORM]
    ),
    st.sampled_from(["text/plain", "", ";", "multipart/form-data; boundary=x"]),
    WIRE_TEXT,
)
RESERVED = {
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "expect",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "content-type",
    *AUTH_NAMES,
}
EXTRA_HEADERS = st.lists(
    st.tuples(
        st.from_regex(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,24}", fullmatch=True)
        | st.sampled_from(
            ["X-Etl-Webhook-Event-Id", "X-Etl-Webhook-Event", "X-Etl-Webhook-Entity-URL"]
        ),
        WIRE_TEXT,
    ).filter(lambda pair: pair[0].lower() not in RESERVED),
    max_size=4,
)


@dataclass(frozen=True)
class Request:
    method: str
    source: str
    headers: dict[str, list[str]]
    content_type: str | None
    extra: list[tuple[str, str]]
    body: bytes
    signed: bool
    """Correctly signed by the oracle's judgement."""
    pristine: bool
    """Signed as built, nothing tampered with: the receiver must not answer 401."""


def latin1(value: str) -> bool:
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


@st.composite
def requests(
    draw: st.DrawFn,
    tamper: bool = True,
    etlworks_shaped: bool = False,
) -> Request:
    known = sorted(SOURCES)
    source = draw(st.sampled_from([*known, "no-such-source"] if tamper else known))
    content_type: str | None
    if etlworks_shaped:
        body, content_type = draw(ETLWORKS_SHAPES)
    else:
        body, natural_type = draw(BODY_SHAPES)
        content_type = draw(st.one_of(st.just(natural_type), st.just(natural_type), CONTENT_TYPES))
    signed_for = source if source in SOURCES else "hmac"
    headers = draw(signed_headers(signed_for, body, NOW))
    if tamper:
        attempt = draw(tampered(headers, WIRE_TEXT))
        sent = draw(
            st.just(body)
            | st.builds(
                insert, st.just(body), st.integers(0, 300), st.binary(min_size=1, max_size=3)
            )
        )
    else:
        attempt, sent = Tampered({k: [v] for k, v in headers.items()}, pristine=True), body
    # What the wire can carry: HTTP strips the optional whitespace around a value, and an edit
    # such as swapcase() can leave Latin-1 ("ÿ" → "Ÿ"), which no client can send.
    wire = {k: [v.strip(" \t") for v in vs] for k, vs in attempt.headers.items()}
    assume(all(latin1(v) for vs in wire.values() for v in vs))
    attempt = Tampered(wire, attempt.pristine)
    signed = source in SOURCES and valid(source, attempt.headers, sent, NOW)
    pristine = attempt.pristine and (sent == body or signed_for not in SIGNS_BODY)
    return Request(
        method=draw(st.sampled_from(["GET", "POST"])),
        source=source,
        headers=attempt.headers,
        content_type=content_type,
        extra=draw(EXTRA_HEADERS),
        body=sent,
        signed=signed,
        pristine=pristine and source in SOURCES,
    )


def send(served: Served, request: Request) -> httpx.Response:
    pairs = [(name, value) for name, values in request.headers.items() for value in values]
    if request.content_type is not None:
        pairs.append(("content-type", request.content_type))
    # A connection per example, so that no example depends on what the one before left behind
    # (a crashed request may leave its connection closed).
    pairs += [*request.extra, ("connection", "close")]
    wire = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in pairs]
    return served.client.request(
        request.method, f"/webhooks/{request.source}", content=request.body, headers=wire
    )


def check(served: Served, request: Request) -> int:
    before = served.redis.dbsize()
    response = send(served, request)
    status = response.status_code
    note(f"{status} {response.text[:200]}")
    event(f"{request.source if request.source in SOURCES else 'unknown'}: {status}")
    assert status < 500
    if 200 <= status < 300:
        assert request.signed
    else:
        assert served.redis.dbsize() == before  # a refusal stores nothing
    if request.source not in SOURCES:
        assert status == 404
    elif not request.signed:
        assert status in (401, 413)  # nothing about the request is said before verification
    if request.pristine:
        assert status != 401
    return status


@FUZZ
@given(request=requests())
def test_the_receiver_answers_2xx_only_to_signed_requests(served: Served, request: Request) -> None:
    check(served, request)


@FUZZ
@given(request=requests(tamper=False))
def test_signed_bodies_of_any_shape_never_make_a_5xx(served: Served, request: Request) -> None:
    assert check(served, request) in (200, 202, 400, 413, 415)


@FUZZ
@given(request=requests(tamper=False, etlworks_shaped=True))
def test_signed_etlworks_payloads_are_stored_or_refused_cleanly(
    served: Served, request: Request
) -> None:
    assert check(served, request) in (200, 202, 400)
