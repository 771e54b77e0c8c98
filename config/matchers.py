"""Alertmanager-style label matchers: ``label="value"``, ``label!="value"``, ``label=~"regex"``,
``label!~"regex"``. Pure.

The syntax is Alertmanager's (``pkg/labels/parse.go``): whitespace around the three parts is
dropped; the value may be double-quoted; inside it ``\\"`` is a quote, ``\\\\`` a backslash and
``\\n`` a line feed, while any other backslash stays as written, so ``=~"etl-\\d+"`` keeps its
``\\d``. An unescaped ``"`` may only open and close the value, and the empty value must be
written ``""``.

Regexes are anchored at both ends, as in Alertmanager (``^(?:regex)$``): ``flow_name=~"warehouse"``
matches ``warehouse`` and not ``old-warehouse-x``, and ``=~"a|b"`` matches ``a`` or ``b``, never
``xa``. A label the event lacks is the empty string. ``tags`` is the one label with many values:
``=`` and ``=~`` match if any tag does, ``!=`` and ``!~`` if no tag does; an event without tags
has a single empty tag, like any absent label, so ``tags!=""`` means "has a tag".

Deliberate differences from Alertmanager: labels are the event's (an unknown one is an error,
not a label that is always empty), and so are the values of the labels that have a closed set of
them (``kind``, ``status``: a value outside it, or a regex matching none of it, is an error,
not a matcher that never matches); regexes are Python's :mod:`re`, not Go's RE2, so ``\\d`` and
``\\w`` also match non-ASCII digits and letters, an inline flag such as ``(?i)`` must open the
regex, and backreferences and lookarounds are accepted.
"""

import difflib
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Op = Literal["=", "!=", "=~", "!~"]
_SYNTAX = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*", re.DOTALL)
_OPERATOR_LIKE = re.compile(r"\s*[A-Za-z_][A-Za-z0-9_]*\s*([=!~<>]+)\s*(.*?)\s*", re.DOTALL)
_UNESCAPE = {"n": "\n", '"': '"', "\\": "\\"}


@dataclass(frozen=True)
class Matcher:
    label: str
    op: Op
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def matches(self, labels: Mapping[str, str], tags: Sequence[str] = ()) -> bool:
        if self.label == "tags":
            hit = any(self._equal(tag) for tag in tags or ("",))
        else:
            hit = self._equal(labels.get(self.label, ""))
        return hit if self.op in ("=", "=~") else not hit

    def _equal(self, text: str) -> bool:
        if self._regex is not None:
            # fullmatch anchors the whole pattern, alternation included, at both ends, and
            # unlike ``$`` accepts no trailing newline: Go's ``^(?:regex)$``
            return self._regex.fullmatch(text) is not None
        return text == self.value

    def __str__(self) -> str:
        """The matcher as it is written, so that parsing it again gives the same matcher."""
        escaped = self.value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
        return f'{self.label}{self.op}"{escaped}"'


def parse(
    text: str, labels: Collection[str], values: Mapping[str, Collection[str]] | None = None
) -> Matcher:
    """Parse one matcher; raise ``ValueError`` with a message for the config's author.

    ``values`` holds the labels whose values form a closed set (``kind``, say): a value not in
    it, or a regex that matches none of it, could only be a mistake, and is refused."""
    match = _SYNTAX.fullmatch(text)
    if match is None:
        _wrong_operator(text)
        raise ValueError(f'{text!r} is not a matcher: write label="value", !=, =~ or !~')
    label, op, raw = match.groups()
    if label not in labels:
        raise ValueError(f"unknown label {label!r} (known: {', '.join(sorted(labels))})")
    if not raw:  # as in Alertmanager: more likely a value forgotten than the empty string
        raise ValueError(f'{text!r} has no value: write {label}{op}"" for the empty string')
    try:
        value = _unquote(raw)
    except ValueError:
        _wrong_operator(text)
        raise
    regex = None
    if op in ("=~", "!~"):
        try:
            regex = re.compile(value)
        except (re.error, OverflowError) as exc:  # a repeat count past sys.maxsize overflows
            raise ValueError(f"bad regex {value!r}: {exc}") from None
        except RecursionError:
            raise ValueError(f"bad regex {value!r}: nested too deeply") from None
    matcher = Matcher(label, op, value, regex)  # type: ignore[arg-type]
    if values is not None and label in values:
        _check_closed(matcher, values[label])
    return matcher


def _wrong_operator(text: str) -> None:
    """Name the operator of a matcher that does not parse, when it is a wrong one (``==``,
    ``~=``, ``<>``): read as ``=`` and an odd value, it would be reported as bad quoting.
    Only for a matcher that fails anyway, since Alertmanager reads ``a=~~~`` as ``=~`` and
    ``"~~"``, and a config written for it must keep its meaning."""
    found = _OPERATOR_LIKE.fullmatch(text)
    if found is not None and found.group(1) not in ("=", "!=", "=~", "!~"):
        raise ValueError(f"unknown operator {found.group(1)!r}; use =, !=, =~ or !~")


def _check_closed(matcher: Matcher, known: Collection[str]) -> None:
    """Refuse a matcher on a closed set of values that names none of them. The empty string
    may be among ``known`` (a label that can be absent) but is never listed."""
    listed = ", ".join(sorted(v for v in known if v))
    label, value = matcher.label, matcher.value
    if matcher._regex is not None:
        if not any(matcher._regex.fullmatch(v) for v in known):
            raise ValueError(f"the regex {value!r} matches no {label} (known: {listed})")
    elif value not in known:
        close = difflib.get_close_matches(value, [v for v in known if v], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown {label} {value!r} (known: {listed}){hint}")


def _unquote(raw: str) -> str:
    """The value of ``raw``, unescaped as Alertmanager does (see the module's docstring)."""
    quoted = raw.startswith('"')
    body = raw[1:] if quoted else raw
    out: list[str] = []
    closed = False
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            following = body[i + 1]
            out.append(_UNESCAPE.get(following, char + following))
            i += 2
            continue
        if char == '"':
            if not quoted or i < len(body) - 1:
                raise ValueError(f'bad quoting in {raw!r}: write a " inside the value as \\"')
            closed = True
        else:
            out.append(char)
        i += 1
    if quoted and not closed:
        raise ValueError(f'bad quoting in {raw!r}: the closing " is missing')
    return "".join(out)
