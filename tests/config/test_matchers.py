"""config.matchers: Alertmanager's matcher syntax and semantics, table by table, and every error
by its exact message.

Alertmanager's own cases (``pkg/labels/parse_test.go``) are the reference for the syntax; the
few deliberate differences are asserted at the end."""

import pytest

from config.base import CLOSED, MATCHABLE
from config.matchers import Matcher, parse

KNOWN = (
    "audit_id, consecutive_failures, entity_id, entity_url,"
    " error, event, flow_id, flow_name, id, kind, source,"
    " status, tags, webhook_id"
)


def matcher(text: str) -> Matcher:
    return parse(text, MATCHABLE)


def error(text: str) -> str:
    with pytest.raises(ValueError) as caught:
        matcher(text)
    return str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the four operators
        ('kind="flow.failed"', ("kind", "=", "flow.failed")),
        ('kind!="flow.failed"', ("kind", "!=", "flow.failed")),
        ('flow_name=~"warehouse-.*"', ("flow_name", "=~", "warehouse-.*")),
        ('flow_name!~"staging-.*"', ("flow_name", "!~", "staging-.*")),
        # whitespace around each part is dropped, inside a value it is kept
        ('  kind  =  "flow.failed"  ', ("kind", "=", "flow.failed")),
        ('kind\t!=\n"flow.failed"', ("kind", "!=", "flow.failed")),
        ('flow_name =~ " spaced out "', ("flow_name", "=~", " spaced out ")),
        # unquoted values
        ("kind=flow.failed", ("kind", "=", "flow.failed")),
        ("flow_name = warehouse load ", ("flow_name", "=", "warehouse load")),
        ("flow_name=~warehouse-.*", ("flow_name", "=~", "warehouse-.*")),
        # the empty value, quoted
        ('error=""', ("error", "=", "")),
        ('error != ""', ("error", "!=", "")),
        # escapes: \" \\ \n, and any other backslash kept as written
        (r'flow_name="say \"hi\""', ("flow_name", "=", 'say "hi"')),
        (r'flow_name="back\\slash"', ("flow_name", "=", "back\\slash")),
        (r'error="line\nbreak"', ("error", "=", "line\nbreak")),
        (r'flow_name=~"etl-\d+"', ("flow_name", "=~", r"etl-\d+")),
        (r'flow_name=~"etl-\\d+"', ("flow_name", "=~", r"etl-\d+")),
        (r'flow_name=~"a\.b"', ("flow_name", "=~", r"a\.b")),
        (r'flow_name="\t"', ("flow_name", "=", r"\t")),
        (r"flow_name=a\"b", ("flow_name", "=", 'a"b')),
        ("flow_name=ends\\", ("flow_name", "=", "ends\\")),
        (r'kind!="\""', ("kind", "!=", '"')),
        # other characters are themselves
        ('flow_name="café ✓, it\'s {x}"', ("flow_name", "=", "café ✓, it's {x}")),
        ('flow_name=~"a=~b"', ("flow_name", "=~", "a=~b")),
        ("flow_name=~~~", ("flow_name", "=~", "~~")),
        (r"flow_name==\\=\=\"", ("flow_name", "=", '=\\=\\="')),
        ('flow_name="a\nb"', ("flow_name", "=", "a\nb")),
    ],
)
def test_parse(text: str, expected: tuple[str, str, str]) -> None:
    found = matcher(text)
    assert (found.label, found.op, found.value) == expected
    assert matcher(str(found)) == found, "str() writes what parses back to the same matcher"


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("kind = flow.failed", 'kind="flow.failed"'),
        (r'flow_name=~"etl-\d+"', r'flow_name=~"etl-\\d+"'),
        ('error="a\nb \\" c"', r'error="a\nb \" c"'),
    ],
)
def test_str_writes_the_quoted_form(text: str, written: str) -> None:
    assert str(matcher(text)) == written


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        # anchored at both ends
        ('flow_name=~"warehouse"', "warehouse", True),
        ('flow_name=~"warehouse"', "old-warehouse-x", False),
        ('flow_name=~"warehouse"', "warehouse-x", False),
        ('flow_name=~"warehouse"', "x-warehouse", False),
        ('flow_name=~"warehouse-.*"', "warehouse-load", True),
        ('flow_name=~"warehouse-.*"', "old-warehouse-load", False),
        ('flow_name!~"warehouse"', "old-warehouse-x", True),
        ('flow_name!~"warehouse"', "warehouse", False),
        # alternation is anchored as a whole
        ('flow_name=~"a|b"', "a", True),
        ('flow_name=~"a|b"', "b", True),
        ('flow_name=~"a|b"', "xa", False),
        ('flow_name=~"a|b"', "ax", False),
        ('flow_name=~"a|b"', "ab", False),
        ('flow_name=~"a|b"', "", False),
        ('flow_name!~"a|b"', "xa", True),
        ('flow_name!~"a|b"', "b", False),
        ('flow_name=~"a|b|"', "", True),
        # "$" would accept a trailing newline; the anchoring does not
        ('flow_name=~"a"', "a\n", False),
        ('flow_name=~"a$"', "a\n", False),
        # "." stops at a line feed unless (?s) says otherwise, as in Go
        ('error=~".*timeout.*"', "step 3\nread timeout", False),
        ('error=~"(?s).*timeout.*"', "step 3\nread timeout", True),
        ('flow_name=~"(?i)warehouse"', "WareHouse", True),
        (r'flow_name=~"etl-\d+"', "etl-42", True),
        (r'flow_name=~"etl-\d+"', "etl-4x", False),
        (r'flow_name=~"a\.b"', "axb", False),
        # = and != compare the whole text, and are no regex
        ('kind="flow.failed"', "flow.failed", True),
        ('kind="flow.failed"', "flow.failedx", False),
        ('kind="flow.failed"', "Flow.Failed", False),
        ('flow_name="a.*"', "abc", False),
        ('flow_name="a.*"', "a.*", True),
        ('kind!="flow.failed"', "flow.failed", False),
        ('kind!="flow.failed"', "flow.warning", True),
        ('flow_name=" x "', " x ", True),
        ('flow_name=" x "', "x", False),
    ],
)
def test_matches_a_label(text: str, value: str, expected: bool) -> None:
    found = matcher(text)
    assert found.matches({found.label: value}) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('error=""', True),
        ('error!=""', False),
        ('error=~".*"', True),
        ('error=~".+"', False),
        ('error!~".+"', True),
        ('error!~".*"', False),
        ('flow_name="x"', False),
        ('flow_name!="x"', True),
        ('flow_name=~"x|"', True),
    ],
)
def test_an_absent_label_is_the_empty_string(text: str, expected: bool) -> None:
    assert matcher(text).matches({"kind": "flow.failed"}) is expected
    assert matcher(text).matches({"kind": "flow.failed", matcher(text).label: ""}) is expected


@pytest.mark.parametrize(
    ("text", "tags", "expected"),
    [
        # = and =~: any tag
        ('tags="nightly"', ["warehouse", "nightly"], True),
        ('tags="nightly"', ["warehouse"], False),
        ('tags="nightly"', ["nightly-x"], False),
        ('tags=~"night.*"', ["warehouse", "nightly"], True),
        ('tags=~"night"', ["nightly"], False),
        ('tags=~"staging|dev"', ["prod", "dev"], True),
        ('tags=~"staging|dev"', ["prod", "xdev"], False),
        # != and !~: no tag
        ('tags!="nightly"', ["warehouse"], True),
        ('tags!="nightly"', ["warehouse", "nightly"], False),
        ('tags!~"staging|dev"', ["prod"], True),
        ('tags!~"staging|dev"', ["prod", "staging"], False),
        ('tags!~"staging|dev"', ["prod", "xstaging"], True),
        # no tags is one empty tag, as an absent label is the empty string
        ('tags="nightly"', [], False),
        ('tags!="nightly"', [], True),
        ('tags!~"staging|dev"', [], True),
        ('tags=""', [], True),
        ('tags!=""', [], False),
        ('tags!=""', ["x"], True),
        ('tags=~".*"', [], True),
        ('tags=~".+"', [], False),
    ],
)
def test_tags_match_if_any_tag_does(text: str, tags: list[str], expected: bool) -> None:
    assert matcher(text).matches({}, tags) is expected


def test_tags_is_no_single_valued_label() -> None:
    """A ``tags`` key among the labels is not what ``tags`` matches."""
    assert not matcher('tags="x"').matches({"tags": "x"}, ["y"])
    assert not matcher('flow_name="x"').matches({}, ["x"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('flowname="x"', f"unknown label 'flowname' (known: {KNOWN})"),
        ('Kind="flow.failed"', f"unknown label 'Kind' (known: {KNOWN})"),
        ('alertname="x"', f"unknown label 'alertname' (known: {KNOWN})"),
        ("kind", """'kind' is not a matcher: write label="value", !=, =~ or !~"""),
        ('kind:"x"', """'kind:"x"' is not a matcher: write label="value", !=, =~ or !~"""),
        ('="x"', """'="x"' is not a matcher: write label="value", !=, =~ or !~"""),
        ('9kind="x"', """'9kind="x"' is not a matcher: write label="value", !=, =~ or !~"""),
        (
            'flow-name="x"',
            """'flow-name="x"' is not a matcher: write label="value", !=, =~ or !~""",
        ),
        ('kind ~= "x"', "unknown operator '~='; use =, !=, =~ or !~"),
        ('event=="X"', "unknown operator '=='; use =, !=, =~ or !~"),
        ('flow_id <> "7"', "unknown operator '<>'; use =, !=, =~ or !~"),
        ('flow_id !== "7"', "unknown operator '!=='; use =, !=, =~ or !~"),
        ('flow_id=!"7"', "unknown operator '=!'; use =, !=, =~ or !~"),
        ('{kind="x"}', """'{kind="x"}' is not a matcher: write label="value", !=, =~ or !~"""),
        ("", """'' is not a matcher: write label="value", !=, =~ or !~"""),
        ("flow_name=", """'flow_name=' has no value: write flow_name="" for the empty string"""),
        ("error !=  ", """'error !=  ' has no value: write error!="" for the empty string"""),
        (
            'flow_name=~"(unclosed"',
            "bad regex '(unclosed': missing ), unterminated subpattern at position 0",
        ),
        ('flow_name=~"[a-"', "bad regex '[a-': unterminated character set at position 0"),
        ('flow_name!~"*"', "bad regex '*': nothing to repeat at position 0"),
        ('flow_name=~"\\\\"', "bad regex '\\\\': bad escape (end of pattern) at position 0"),
        (
            'flow_name=~"a{99999999999}"',
            "bad regex 'a{99999999999}': the repetition number is too large",
        ),
        (
            'flow_name=~"' + "(" * 2000 + ")" * 2000 + '"',
            f"bad regex {'(' * 2000 + ')' * 2000!r}: nested too deeply",
        ),
        ('kind="flow.failed', """bad quoting in '"flow.failed': the closing " is missing"""),
        ('kind="', """bad quoting in '"': the closing " is missing"""),
        (r'kind="a\"', """bad quoting in '"a\\\\"': the closing " is missing"""),
        ('kind="a"b"', """bad quoting in '"a"b"': write a " inside the value as \\\""""),
        ('kind=a"b', """bad quoting in 'a"b': write a " inside the value as \\\""""),
        ('kind=""x', """bad quoting in '""x': write a " inside the value as \\\""""),
    ],
)
def test_errors(text: str, message: str) -> None:
    assert error(text) == message


KINDS = (
    "expectation.missed, flow.canceled, flow.failed, flow.running, flow.succeeded,"
    " flow.timeout, flow.warning, join.expired, other, resource.changed, webhook.missing,"
    " webhook.resumed"
)
STATUSES = "canceled, error, queued, running, success, warning"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'kind="flow_failed"',
            f"unknown kind 'flow_failed' (known: {KINDS}); did you mean 'flow.failed'?",
        ),
        ('kind!="failed"', f"unknown kind 'failed' (known: {KINDS}); did you mean 'flow.failed'?"),
        ('kind="FLOW_FAILED"', f"unknown kind 'FLOW_FAILED' (known: {KINDS})"),
        ('kind=""', f"unknown kind '' (known: {KINDS})"),
        ('kind=~"flow_.*"', f"the regex 'flow_.*' matches no kind (known: {KINDS})"),
        ('kind!~"failed"', f"the regex 'failed' matches no kind (known: {KINDS})"),
        ('status="failed"', f"unknown status 'failed' (known: {STATUSES})"),
        (
            'status="sucess"',
            f"unknown status 'sucess' (known: {STATUSES}); did you mean 'success'?",
        ),
        ('status=~"ok|fine"', f"the regex 'ok|fine' matches no status (known: {STATUSES})"),
    ],
)
def test_closed_sets_of_values_are_checked(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse(text, MATCHABLE, CLOSED)
    assert str(caught.value) == message
    parse(text, MATCHABLE)  # without the closed sets, the value is not checked


@pytest.mark.parametrize(
    "text",
    [
        'kind="flow.failed"',
        'kind!="flow.succeeded"',
        'kind=~"flow\\.(failed|timeout)"',
        'kind!~"flow\\..*"',  # matches the kinds that are not flows
        'status="error"',
        'status=""',  # no status known
        'status!=""',
        'status=~"err.*|warning"',
        'flow_name="flow_failed"',  # an open set
    ],
)
def test_values_of_closed_sets_pass(text: str) -> None:
    assert parse(text, MATCHABLE, CLOSED) == parse(text, MATCHABLE)


def test_the_label_is_checked_before_the_value() -> None:
    assert error('nope=~"("') == f"unknown label 'nope' (known: {KNOWN})"


def test_labels_are_the_ones_given() -> None:
    assert parse('team="data"', ["team"]).matches({"team": "data"})
    with pytest.raises(ValueError, match=r"^unknown label 'kind' \(known: team, zone\)$"):
        parse('kind="x"', ["zone", "team"])


def test_equality_ignores_the_compiled_regex_and_repr_hides_it() -> None:
    assert matcher('flow_name=~"a|b"') == matcher('  flow_name =~ "a|b" ')
    assert matcher('flow_name=~"a|b"') != matcher('flow_name!~"a|b"')
    assert repr(matcher('flow_name=~"a|b"')) == "Matcher(label='flow_name', op='=~', value='a|b')"


class TestDifferencesFromAlertmanager:
    """Where Python's ``re`` differs from Go's RE2, the regex is Python's; asserted so that a
    change of engine is a decision, not an accident."""

    def test_an_inline_flag_must_open_the_regex(self) -> None:
        # Go accepts "x(?i)y" (case-insensitive from there on); Python refuses it
        assert error('flow_name=~"x(?i)y"') == (
            "bad regex 'x(?i)y': global flags not at the start of the expression at position 1"
        )
        assert matcher('flow_name=~"(?i)x-y"').matches({"flow_name": "X-Y"})

    def test_digit_and_word_classes_are_unicode(self) -> None:
        # RE2's \d is [0-9]; Python's also takes other scripts' digits
        assert matcher(r'flow_id=~"\d+"').matches({"flow_id": "١٢٣"})
        assert matcher(r'flow_name=~"\w+"').matches({"flow_name": "café"})

    def test_lookarounds_and_backreferences_are_accepted(self) -> None:
        # RE2 has neither
        assert matcher(r'flow_name=~"(?!staging-).*"').matches({"flow_name": "prod-load"})
        assert not matcher(r'flow_name=~"(?!staging-).*"').matches({"flow_name": "staging-x"})
        assert matcher(r'flow_name=~"(a)-\1"').matches({"flow_name": "a-a"})
