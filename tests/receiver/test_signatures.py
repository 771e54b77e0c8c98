"""receiver.signatures, table by table: every check type against valid, tampered, rotated and
malformed input, each refusal asserted by its exact reason.

The expected signatures are computed with hmac/hashlib/base64 (``tests.support.mac``),
independently of the code under test and of ``flowhooks.sendtest.sign`` (which gets a test of
its own at the end). Headers are given as the receiver hands them over: lower-case names, every
value sent, Latin-1 text.
"""

import base64
from textwrap import wrap
from typing import NamedTuple

import pytest

from config.schema import VerifyStep
from flowhooks.sendtest import sign
from receiver.signatures import (
    CREDENTIALS,
    FUTURE,
    MALFORMED,
    MISMATCH,
    MISSING,
    REASONS,
    REPEATED,
    STALE,
    Rejected,
    compile_checks,
)
from tests.support import ENV, OLD_SECRET, SECRET, b64, mac, make_config

NOW = 1_764_000_000.0
SECONDS = str(int(NOW))
MILLIS = str(int(NOW * 1000) + 123)
BODY = b'{"eventId":"evt-1","eventType":"FLOW_FAILED","flowId":7,"flowName":"orders"}'

KEY = base64.b64decode(ENV["WHSEC"].removeprefix("whsec_"))
OLD_KEY = b"the-previous-standard-webhooks-key"
RAW_KEY = b"a-key-configured-without-whsec"
ENVIRON = {
    **ENV,
    "OLD_WHSEC": "whsec_" + base64.b64encode(OLD_KEY).decode(),
    "RAW_KEY": base64.b64encode(RAW_KEY).decode(),
    "COLON_PASSWORD": "pa:ss:word",
    "UTF8_TOKEN": "tökén-ü",
}
SECRET_VALUES = list(ENVIRON.values())

SIG = "x-etl-webhook-signature"
STAMP = "x-etl-webhook-timestamp"
TOKEN_HEADER = "x-flowhooks-token"

HMAC = 'hmac: {secrets: ["${SECRET}", "${OLD_SECRET}"]}'
HMAC_TS = (
    "hmac: {timestamp_header: X-Etl-Webhook-Timestamp, tolerance: 5m,"
    ' secrets: ["${SECRET}", "${OLD_SECRET}"]}'
)
SWH = 'standard_webhooks: {secrets: ["${WHSEC}", "${OLD_WHSEC}"]}'
BASIC = 'basic: {username: etlworks, password: "${PASSWORD}"}'
TOKEN = 'header_token: {header: X-Flowhooks-Token, token: "${TOKEN}"}'

Expected = list[str] | tuple[str, str]
"""What ``verify`` returns, or the ``(check, reason)`` of the :class:`Rejected` it raises."""


class Case(NamedTuple):
    name: str
    verify: tuple[str, ...]
    headers: dict[str, list[str]]
    expected: Expected
    body: bytes = BODY
    now: float = NOW


def steps(*verify: str) -> list[VerifyStep]:
    """The steps of a source whose ``verify:`` list holds ``verify``, as YAML flow mappings."""
    text = "sources:\n  s:\n    verify:\n" + "".join(f"      - {step}\n" for step in verify)
    return make_config(text, ENVIRON).sources["s"].verify


def run(case: Case) -> None:
    verifier = compile_checks(steps(*case.verify))
    if isinstance(case.expected, list):
        passed = verifier.verify(case.headers, case.body, case.now)
        assert passed == case.expected
        said = " ".join(passed)
    else:
        with pytest.raises(Rejected) as info:
            verifier.verify(case.headers, case.body, case.now)
        assert (info.value.check, info.value.reason) == case.expected
        said = str(info.value)
    assert not [secret for secret in SECRET_VALUES if secret in said]


def hexsig(secret: str = SECRET, body: bytes = BODY, algorithm: str = "sha256") -> str:
    return mac(secret, body, algorithm).hex()


# --- hmac ---------------------------------------------------------------------------------


def hmac_case(
    name: str, value: str | list[str] | None, expected: Expected, body: bytes = BODY
) -> Case:
    values = [value] if isinstance(value, str) else value
    return Case(name, (HMAC,), {} if values is None else {SIG: values}, expected, body)


HMAC_OK = ["hmac: secret #1"]
HMAC_CASES = [
    hmac_case("valid", hexsig(), HMAC_OK),
    hmac_case("valid with the default prefix", "sha256=" + hexsig(), HMAC_OK),
    hmac_case("the default prefix in capitals", "SHA256=" + hexsig(), HMAC_OK),
    hmac_case("upper-case hex", hexsig().upper(), HMAC_OK),
    hmac_case("optional whitespace around the value", f" {hexsig()}\t", HMAC_OK),
    hmac_case("rotated: the second secret", hexsig(OLD_SECRET), ["hmac: secret #2"]),
    hmac_case("tampered body", hexsig(), ("hmac", MISMATCH), body=BODY + b" "),
    hmac_case("empty body signed, body sent", hexsig(body=b""), ("hmac", MISMATCH)),
    hmac_case("wrong secret", hexsig("not-the-secret"), ("hmac", MISMATCH)),
    hmac_case("another algorithm", hexsig(algorithm="sha512"), ("hmac", MISMATCH)),
    hmac_case("truncated", hexsig()[:32], ("hmac", MISMATCH)),
    hmac_case("missing header", None, ("hmac", MISSING)),
    hmac_case("repeated header", [hexsig(), hexsig()], ("hmac", REPEATED)),
    hmac_case("repeated, one of them valid", ["00", hexsig()], ("hmac", REPEATED)),
    hmac_case("garbled", "not a signature", ("hmac", MALFORMED)),
    hmac_case("bad hex", "zz" + hexsig()[2:], ("hmac", MALFORMED)),
    hmac_case("odd-length hex", hexsig()[:-1], ("hmac", MALFORMED)),
    hmac_case("spaces between the bytes", " ".join(wrap(hexsig(), 2)), ("hmac", MALFORMED)),
    hmac_case("non-ASCII", "é" * 64, ("hmac", MALFORMED)),
    hmac_case("empty", "", ("hmac", MALFORMED)),
    hmac_case("the prefix alone", "sha256=", ("hmac", MALFORMED)),
    hmac_case("another algorithm's prefix", "sha1=" + hexsig(), ("hmac", MALFORMED)),
    hmac_case("base64 where hex is expected", b64(mac(SECRET, BODY)), ("hmac", MALFORMED)),
    Case(
        "the header under another name",
        (HMAC,),
        {"x-signature": [hexsig()]},
        ("hmac", MISSING),
    ),
    Case(
        "a custom header",
        ("hmac: {header: X-Hub-Signature-256, secrets: ['${SECRET}']}",),
        {"x-hub-signature-256": ["sha256=" + hexsig()]},
        HMAC_OK,
    ),
]

CUSTOM_PREFIX = 'hmac: {prefix: "v0=", secrets: ["${SECRET}"]}'
NO_PREFIX = 'hmac: {prefix: "", secrets: ["${SECRET}"]}'
B64 = 'hmac: {encoding: base64, secrets: ["${SECRET}", "${OLD_SECRET}"]}'
HMAC_OPTION_CASES = [
    Case("custom prefix", (CUSTOM_PREFIX,), {SIG: ["v0=" + hexsig()]}, HMAC_OK),
    Case("custom prefix in capitals", (CUSTOM_PREFIX,), {SIG: ["V0=" + hexsig()]}, HMAC_OK),
    Case("custom prefix absent", (CUSTOM_PREFIX,), {SIG: [hexsig()]}, HMAC_OK),
    Case(
        "custom prefix, the default one sent",
        (CUSTOM_PREFIX,),
        {SIG: ["sha256=" + hexsig()]},
        ("hmac", MALFORMED),
    ),
    Case("no prefix configured", (NO_PREFIX,), {SIG: [hexsig()]}, HMAC_OK),
    Case(
        "no prefix configured, the default one sent",
        (NO_PREFIX,),
        {SIG: ["sha256=" + hexsig()]},
        ("hmac", MALFORMED),
    ),
    Case("base64", (B64,), {SIG: [b64(mac(SECRET, BODY))]}, HMAC_OK),
    Case("base64, rotated", (B64,), {SIG: [b64(mac(OLD_SECRET, BODY))]}, ["hmac: secret #2"]),
    Case("base64 with prefix", (B64,), {SIG: ["sha256=" + b64(mac(SECRET, BODY))]}, HMAC_OK),
    Case(
        "base64, tampered body",
        (B64,),
        {SIG: [b64(mac(SECRET, BODY))]},
        ("hmac", MISMATCH),
        b"{}",
    ),
    Case("bad base64", (B64,), {SIG: ["!!!!" + b64(mac(SECRET, BODY))[4:]]}, ("hmac", MALFORMED)),
    Case(
        "base64 without its padding",
        (B64,),
        {SIG: [b64(mac(SECRET, BODY)).rstrip("=")]},
        ("hmac", MALFORMED),
    ),
    Case("base64 garbled", (B64,), {SIG: ["a b c d"]}, ("hmac", MALFORMED)),
    Case("base64 non-ASCII", (B64,), {SIG: ["ÿÿÿÿ"]}, ("hmac", MALFORMED)),
    Case("hex where base64 is expected", (B64,), {SIG: [hexsig()]}, ("hmac", MISMATCH)),
]


def stamped(stamp: str, secret: str = SECRET, body: bytes = BODY) -> dict[str, list[str]]:
    """Signature and timestamp headers, the signed text being ``{stamp}.{body}``."""
    return {SIG: [mac(secret, stamp.encode() + b"." + body).hex()], STAMP: [stamp]}


def ts_case(name: str, headers: dict[str, list[str]], expected: Expected) -> Case:
    return Case(name, (HMAC_TS,), headers, expected)


def at(offset: float, scale: int = 1) -> str:
    return str(int((NOW + offset) * scale))


TIMESTAMP_CASES = [
    ts_case("fresh, in seconds", stamped(SECONDS), HMAC_OK),
    ts_case("fresh, in milliseconds", stamped(MILLIS), HMAC_OK),
    ts_case("rotated secret", stamped(SECONDS, OLD_SECRET), ["hmac: secret #2"]),
    ts_case("signed as sent, leading zero", stamped("0" + SECONDS), HMAC_OK),
    ts_case("just within the tolerance, past", stamped(at(-300)), HMAC_OK),
    ts_case("just within the tolerance, future", stamped(at(300)), HMAC_OK),
    ts_case("ms just within the tolerance", stamped(at(-300, 1000)), HMAC_OK),
    ts_case("stale, seconds", stamped(at(-301)), ("hmac", STALE)),
    ts_case("future, seconds", stamped(at(301)), ("hmac", FUTURE)),
    ts_case("stale, milliseconds", stamped(at(-301, 1000)), ("hmac", STALE)),
    ts_case("future, milliseconds", stamped(at(301, 1000)), ("hmac", FUTURE)),
    ts_case("10^12 is seconds", stamped(str(10**12)), ("hmac", FUTURE)),
    ts_case("above 10^12 is milliseconds", stamped(str(10**12 + 1)), ("hmac", STALE)),
    ts_case(
        "the body alone signed",
        {SIG: [hexsig()], STAMP: [SECONDS]},
        ("hmac", MISMATCH),
    ),
    ts_case(
        "signed in seconds, sent in milliseconds",
        {SIG: stamped(SECONDS)[SIG], STAMP: [SECONDS + "000"]},
        ("hmac", MISMATCH),
    ),
    ts_case(
        "no dot between timestamp and body",
        {SIG: [mac(SECRET, SECONDS.encode() + BODY).hex()], STAMP: [SECONDS]},
        ("hmac", MISMATCH),
    ),
    ts_case(
        "the timestamp changed after signing",
        {SIG: stamped(SECONDS)[SIG], STAMP: [at(1)]},
        ("hmac", MISMATCH),
    ),
    Case("tampered body", (HMAC_TS,), stamped(SECONDS), ("hmac", MISMATCH), BODY + b"\n"),
    ts_case("timestamp missing", {SIG: stamped(SECONDS)[SIG]}, ("hmac", MISSING)),
    ts_case(
        "timestamp repeated",
        {**stamped(SECONDS), STAMP: [SECONDS, SECONDS]},
        ("hmac", REPEATED),
    ),
    ts_case("non-integer", stamped(SECONDS + ".5"), ("hmac", MALFORMED)),
    ts_case("negative", stamped("-" + SECONDS), ("hmac", MALFORMED)),
    ts_case("exponent", stamped("1.764e9"), ("hmac", MALFORMED)),
    ts_case("empty timestamp", stamped(""), ("hmac", MALFORMED)),
    ts_case("non-ASCII digits", stamped("١٧٦٤٠٠٠٠٠٠"), ("hmac", MALFORMED)),
    ts_case("absurdly long", stamped("1" * 40), ("hmac", MALFORMED)),
]


@pytest.mark.parametrize(
    "case", HMAC_CASES + HMAC_OPTION_CASES + TIMESTAMP_CASES, ids=lambda c: c.name
)
def test_hmac(case: Case) -> None:
    run(case)


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha512"])
@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_hmac_algorithms_and_encodings(algorithm: str, encoding: str) -> None:
    config = (
        f"hmac: {{algorithm: {algorithm}, encoding: {encoding},"
        ' secrets: ["${SECRET}", "${OLD_SECRET}"]}'
    )

    def value(secret: str, signed_with: str = algorithm) -> str:
        digest = mac(secret, BODY, signed_with)
        return digest.hex() if encoding == "hex" else b64(digest)

    other = "sha1" if algorithm != "sha1" else "sha512"
    for case in [
        Case("valid", (config,), {SIG: [value(SECRET)]}, HMAC_OK),
        Case("with prefix", (config,), {SIG: [f"{algorithm}={value(SECRET)}"]}, HMAC_OK),
        Case("rotated", (config,), {SIG: [value(OLD_SECRET)]}, ["hmac: secret #2"]),
        Case("wrong secret", (config,), {SIG: [value("nope")]}, ("hmac", MISMATCH)),
        Case("wrong algorithm", (config,), {SIG: [value(SECRET, other)]}, ("hmac", MISMATCH)),
        Case("tampered", (config,), {SIG: [value(SECRET)]}, ("hmac", MISMATCH), BODY[:-1]),
        Case("garbled", (config,), {SIG: ["%%%%"]}, ("hmac", MALFORMED)),
    ]:
        run(case)


# --- Standard Webhooks ----------------------------------------------------------------------

MSG_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"


def v1(key: bytes = KEY, msg_id: str = MSG_ID, stamp: str = SECONDS, body: bytes = BODY) -> str:
    return "v1," + b64(mac(key, msg_id.encode("latin-1") + f".{stamp}.".encode() + body))


def swh(
    signature: str | None = None, *, msg_id: str = MSG_ID, stamp: str = SECONDS
) -> dict[str, list[str]]:
    return {
        "webhook-id": [msg_id],
        "webhook-timestamp": [stamp],
        "webhook-signature": [v1(msg_id=msg_id, stamp=stamp) if signature is None else signature],
    }


def swh_case(
    name: str, headers: dict[str, list[str]], expected: Expected, body: bytes = BODY
) -> Case:
    return Case(name, (SWH,), headers, expected, body)


def without(headers: dict[str, list[str]], name: str) -> dict[str, list[str]]:
    return {k: v for k, v in headers.items() if k != name}


SWH_OK = ["standard_webhooks: secret #1"]
SWH_NO = "standard_webhooks"
WRONG_KEY = b"0123456789abcdef0123456789abcdef"
SWH_CASES = [
    swh_case("valid", swh(), SWH_OK),
    swh_case("rotated: the second secret", swh(v1(OLD_KEY)), ["standard_webhooks: secret #2"]),
    swh_case("several signatures, the last valid", swh(f"{v1(WRONG_KEY)} {v1()}"), SWH_OK),
    swh_case("several signatures, the first valid", swh(f"{v1()} {v1(WRONG_KEY)}"), SWH_OK),
    swh_case(
        "several signatures, one per secret",
        swh(f"{v1(OLD_KEY)} {v1()}"),
        SWH_OK,
    ),
    swh_case("an unknown version beside v1", swh(f"v2,{b64(b'x' * 32)} {v1()}"), SWH_OK),
    swh_case("bad base64 beside a valid one", swh(f"v1,@@@@ {v1()}"), SWH_OK),
    swh_case("doubled spaces", swh(f"{v1(WRONG_KEY)}  {v1()}"), SWH_OK),
    swh_case(
        "several signatures, none valid",
        swh(f"{v1(WRONG_KEY)} {v1(b'another-wrong-key')}"),
        (SWH_NO, MISMATCH),
    ),
    swh_case("tampered body", swh(), (SWH_NO, MISMATCH), body=b"{}"),
    swh_case("wrong secret", swh(v1(WRONG_KEY)), (SWH_NO, MISMATCH)),
    swh_case(
        "id changed after signing",
        {**swh(), "webhook-id": ["msg_other"]},
        (SWH_NO, MISMATCH),
    ),
    swh_case(
        "timestamp changed after signing",
        {**swh(), "webhook-timestamp": [at(1)]},
        (SWH_NO, MISMATCH),
    ),
    swh_case("only an unknown version", swh("v2," + v1()[3:]), (SWH_NO, MALFORMED)),
    swh_case("only bad base64", swh("v1,@@@@"), (SWH_NO, MALFORMED)),
    swh_case("only an empty signature", swh("v1,"), (SWH_NO, MALFORMED)),
    swh_case("garbled", swh("garbage"), (SWH_NO, MALFORMED)),
    swh_case("empty signature header", swh(""), (SWH_NO, MALFORMED)),
    swh_case("comma-separated instead", swh(f"{v1(WRONG_KEY)},{v1()}"), (SWH_NO, MALFORMED)),
    swh_case("just within the tolerance, past", swh(stamp=at(-300)), SWH_OK),
    swh_case("just within the tolerance, future", swh(stamp=at(300)), SWH_OK),
    swh_case("stale", swh(stamp=at(-301)), (SWH_NO, STALE)),
    swh_case("future", swh(stamp=at(301)), (SWH_NO, FUTURE)),
    swh_case("non-integer timestamp", swh(stamp=SECONDS + ".0"), (SWH_NO, MALFORMED)),
    swh_case("timestamp in milliseconds", swh(stamp=MILLIS), (SWH_NO, MALFORMED)),
    swh_case("negative timestamp", swh(stamp="-1"), (SWH_NO, MALFORMED)),
    swh_case("empty timestamp", swh(stamp=""), (SWH_NO, MALFORMED)),
    swh_case("id missing", without(swh(), "webhook-id"), (SWH_NO, MISSING)),
    swh_case("timestamp missing", without(swh(), "webhook-timestamp"), (SWH_NO, MISSING)),
    swh_case("signature missing", without(swh(), "webhook-signature"), (SWH_NO, MISSING)),
    swh_case(
        "signature repeated",
        {**swh(), "webhook-signature": [v1(WRONG_KEY), v1()]},
        (SWH_NO, REPEATED),
    ),
    swh_case("id repeated", {**swh(), "webhook-id": [MSG_ID, MSG_ID]}, (SWH_NO, REPEATED)),
    swh_case("a Latin-1 id, signed as its bytes", swh(msg_id="msg_é"), SWH_OK),
    swh_case(
        "an id no HTTP server decodes to",
        {**swh(), "webhook-id": ["msg_€"]},
        (SWH_NO, MALFORMED),
    ),
    Case(
        "a secret without whsec_",
        ('standard_webhooks: {secrets: ["${RAW_KEY}"]}',),
        swh(v1(RAW_KEY)),
        SWH_OK,
    ),
    Case(
        "a longer tolerance",
        ('standard_webhooks: {tolerance: 10m, secrets: ["${WHSEC}"]}',),
        swh(stamp=at(-599)),
        SWH_OK,
    ),
]


@pytest.mark.parametrize("case", SWH_CASES, ids=lambda c: c.name)
def test_standard_webhooks(case: Case) -> None:
    run(case)


# --- basic ----------------------------------------------------------------------------------


def basic(credentials: str | bytes, scheme: str = "Basic") -> dict[str, list[str]]:
    raw = credentials.encode() if isinstance(credentials, str) else credentials
    return {"authorization": [f"{scheme} {b64(raw)}"]}


PASSWORD = ENV["PASSWORD"]
BASIC_CASES = [
    Case("valid", (BASIC,), basic(f"etlworks:{PASSWORD}"), ["basic"]),
    Case("lower-case scheme", (BASIC,), basic(f"etlworks:{PASSWORD}", "basic"), ["basic"]),
    Case("wrong user", (BASIC,), basic(f"etlwork:{PASSWORD}"), ("basic", CREDENTIALS)),
    Case("wrong password", (BASIC,), basic("etlworks:guess"), ("basic", CREDENTIALS)),
    Case("password prefix", (BASIC,), basic(f"etlworks:{PASSWORD[:-1]}"), ("basic", CREDENTIALS)),
    Case("empty password", (BASIC,), basic("etlworks:"), ("basic", CREDENTIALS)),
    Case("swapped", (BASIC,), basic(f"{PASSWORD}:etlworks"), ("basic", CREDENTIALS)),
    Case("not Basic", (BASIC,), basic(f"etlworks:{PASSWORD}", "Bearer"), ("basic", MALFORMED)),
    Case("the scheme alone", (BASIC,), {"authorization": ["Basic"]}, ("basic", MALFORMED)),
    Case("no colon", (BASIC,), basic(f"etlworks{PASSWORD}"), ("basic", MALFORMED)),
    Case("bad base64", (BASIC,), {"authorization": ["Basic !!!!"]}, ("basic", MALFORMED)),
    Case("non-ASCII", (BASIC,), {"authorization": ["Basic ÿÿÿÿ"]}, ("basic", MALFORMED)),
    Case("missing", (BASIC,), {}, ("basic", MISSING)),
    Case(
        "repeated",
        (BASIC,),
        {"authorization": basic(f"etlworks:{PASSWORD}")["authorization"] * 2},
        ("basic", REPEATED),
    ),
    Case(
        "a password with colons",
        ('basic: {username: etlworks, password: "${COLON_PASSWORD}"}',),
        basic("etlworks:pa:ss:word"),
        ["basic"],
    ),
    Case(
        "a UTF-8 user name",
        ('basic: {username: jürgen, password: "${PASSWORD}"}',),
        basic(f"jürgen:{PASSWORD}"),
        ["basic"],
    ),
]


@pytest.mark.parametrize("case", BASIC_CASES, ids=lambda c: c.name)
def test_basic(case: Case) -> None:
    run(case)


# --- header_token ---------------------------------------------------------------------------

TOKEN_OK = ["header_token: X-Flowhooks-Token"]
UTF8_TOKEN = 'header_token: {header: X-Flowhooks-Token, token: "${UTF8_TOKEN}"}'
TOKEN_CASES = [
    Case("valid", (TOKEN,), {TOKEN_HEADER: [ENV["TOKEN"]]}, TOKEN_OK),
    Case("wrong", (TOKEN,), {TOKEN_HEADER: ["guess"]}, ("header_token", CREDENTIALS)),
    Case("a prefix", (TOKEN,), {TOKEN_HEADER: [ENV["TOKEN"][:-1]]}, ("header_token", CREDENTIALS)),
    Case("longer", (TOKEN,), {TOKEN_HEADER: [ENV["TOKEN"] + "x"]}, ("header_token", CREDENTIALS)),
    Case("empty", (TOKEN,), {TOKEN_HEADER: [""]}, ("header_token", CREDENTIALS)),
    Case("missing", (TOKEN,), {}, ("header_token", MISSING)),
    Case(
        "in another header",
        (TOKEN,),
        {"authorization": [ENV["TOKEN"]]},
        ("header_token", MISSING),
    ),
    Case(
        "repeated",
        (TOKEN,),
        {TOKEN_HEADER: [ENV["TOKEN"], ENV["TOKEN"]]},
        ("header_token", REPEATED),
    ),
    Case(
        "a UTF-8 token, as the server decodes it",
        (UTF8_TOKEN,),
        {TOKEN_HEADER: [ENVIRON["UTF8_TOKEN"].encode().decode("latin-1")]},
        TOKEN_OK,
    ),
    Case(
        "a UTF-8 token's Latin-1 spelling",
        (UTF8_TOKEN,),
        {TOKEN_HEADER: [ENVIRON["UTF8_TOKEN"]]},
        ("header_token", CREDENTIALS),
    ),
    Case(
        "text no HTTP server decodes to",
        (UTF8_TOKEN,),
        {TOKEN_HEADER: ["€"]},
        ("header_token", MALFORMED),
    ),
]


@pytest.mark.parametrize("case", TOKEN_CASES, ids=lambda c: c.name)
def test_header_token(case: Case) -> None:
    run(case)


# --- all-of chains --------------------------------------------------------------------------

GOOD_BASIC = basic(f"etlworks:{PASSWORD}")
CHAIN_CASES = [
    Case("both pass", (HMAC, BASIC), {SIG: [hexsig()], **GOOD_BASIC}, ["hmac: secret #1", "basic"]),
    Case(
        "hmac fails",
        (HMAC, BASIC),
        {SIG: [hexsig("nope")], **GOOD_BASIC},
        ("hmac", MISMATCH),
    ),
    Case(
        "basic fails",
        (HMAC, BASIC),
        {SIG: [hexsig()], **basic("etlworks:guess")},
        ("basic", CREDENTIALS),
    ),
    Case("basic missing", (HMAC, BASIC), {SIG: [hexsig()]}, ("basic", MISSING)),
    Case("hmac missing", (HMAC, BASIC), GOOD_BASIC, ("hmac", MISSING)),
    Case(
        "both fail: the first is reported",
        (HMAC, BASIC),
        {SIG: [hexsig("nope")], **basic("etlworks:guess")},
        ("hmac", MISMATCH),
    ),
    Case(
        "tampered body",
        (HMAC, BASIC),
        {SIG: [hexsig()], **GOOD_BASIC},
        ("hmac", MISMATCH),
        b"{}",
    ),
    Case(
        "basic first, then hmac",
        (BASIC, HMAC),
        {SIG: [hexsig(OLD_SECRET)], **GOOD_BASIC},
        ["basic", "hmac: secret #2"],
    ),
    Case(
        "standard webhooks and a token",
        (SWH, TOKEN),
        {**swh(), TOKEN_HEADER: [ENV["TOKEN"]]},
        [*SWH_OK, *TOKEN_OK],
    ),
    Case(
        "standard webhooks and a wrong token",
        (SWH, TOKEN),
        {**swh(), TOKEN_HEADER: ["guess"]},
        ("header_token", CREDENTIALS),
    ),
]


@pytest.mark.parametrize("case", CHAIN_CASES, ids=lambda c: c.name)
def test_all_of_chains(case: Case) -> None:
    run(case)


ALL_CASES = (
    HMAC_CASES
    + HMAC_OPTION_CASES
    + TIMESTAMP_CASES
    + SWH_CASES
    + BASIC_CASES
    + TOKEN_CASES
    + CHAIN_CASES
)


def test_the_tables_cover_every_reason() -> None:
    seen = {case.expected[1] for case in ALL_CASES if isinstance(case.expected, tuple)}
    assert seen == set(REASONS)


def test_the_clock_is_the_now_parameter() -> None:
    verifier = compile_checks(steps(HMAC_TS))
    headers = stamped(SECONDS)
    assert verifier.verify(headers, BODY, NOW + 300) == HMAC_OK
    for now, reason in [(NOW + 301, STALE), (NOW - 301, FUTURE), (float("nan"), STALE)]:
        with pytest.raises(Rejected) as info:
            verifier.verify(headers, BODY, now)
        assert info.value.reason == reason


def test_a_source_without_checks_passes_everything() -> None:
    assert compile_checks([]).verify({}, b"anything", NOW) == []


# --- flowhooks send-test signs what the receiver verifies ----------------------------------


@pytest.mark.parametrize(
    "verify",
    [
        (HMAC,),
        (HMAC_TS,),
        (CUSTOM_PREFIX,),
        ('hmac: {algorithm: sha512, encoding: base64, secrets: ["${SECRET}"]}',),
        ('hmac: {algorithm: sha1, prefix: "sha1=", secrets: ["${SECRET}"]}',),
        (SWH,),
        ('standard_webhooks: {secrets: ["${RAW_KEY}"]}',),
        (BASIC,),
        (TOKEN,),
        (HMAC, BASIC),
        (SWH, TOKEN),
        (HMAC_TS, BASIC, TOKEN),
    ],
    ids=lambda verify: " + ".join(step.split(":")[0] for step in verify),
)
@pytest.mark.parametrize("body", [BODY, b""], ids=["body", "empty body"])
def test_send_test_signatures_verify(verify: tuple[str, ...], body: bytes) -> None:
    configured = steps(*verify)
    sent = sign(configured, body, NOW)
    headers = {name.lower(): [value] for name, value in sent.items()}
    passed = compile_checks(configured).verify(headers, body, NOW)
    assert len(passed) == len(verify)
    assert not [p for p in passed if "secret #" in p and not p.endswith("secret #1")]
