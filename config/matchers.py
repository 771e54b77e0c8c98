"""Alertmanager-style label matchers: ``label="value"``, ``label!="value"``, ``label=~"regex"``,
``label!~"regex"``. Pure.

Regexes are anchored at both ends, as in Alertmanager: ``flow_name=~"warehouse-.*"`` matches
``warehouse-load`` but not ``old-warehouse-load``. A label the event lacks is the empty string.
``tags`` is the one label with many values: ``=`` and ``=~`` match if any tag does, ``!=`` and
``!~`` if no tag does.
"""

import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Op = Literal["=", "!=", "=~", "!~"]
_SYNTAX = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.DOTALL)


@dataclass(frozen=True)
class Matcher:
    label: str
    op: Op
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def matches(self, labels: Mapping[str, str], tags: Sequence[str] = ()) -> bool:
        if self.label == "tags":
            hit = any(self._equal(tag) for tag in tags)
            return hit if self.op in ("=", "=~") else not hit
        equal = self._equal(labels.get(self.label, ""))
        return equal if self.op in ("=", "=~") else not equal

    def _equal(self, text: str) -> bool:
        if self._regex is not None:
            return self._regex.fullmatch(text) is not None
        return text == self.value

    def __str__(self) -> str:
        return f"{self.label}{self.op}{json.dumps(self.value)}"


def parse(text: str, labels: Collection[str]) -> Matcher:
    """Parse one matcher; raise ``ValueError`` with a message for the config's author."""
    match = _SYNTAX.fullmatch(text)
    if match is None:
        raise ValueError(f'{text!r} is not a matcher: write label="value", !=, =~ or !~')
    label, op, raw = match.groups()
    if label not in labels:
        raise ValueError(f"unknown label {label!r} (known: {', '.join(sorted(labels))})")
    value = _unquote(raw)
    regex = None
    if op in ("=~", "!~"):
        try:
            regex = re.compile(value)
        except re.error as exc:
            raise ValueError(f"bad regex {value!r}: {exc}") from None
    return Matcher(label, op, value, regex)  # type: ignore[arg-type]


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        try:
            value = json.loads(raw)
        except ValueError:
            raise ValueError(f"bad quoting in {raw}") from None
        if not isinstance(value, str):
            raise ValueError(f"bad quoting in {raw}")
        return value
    if '"' in raw:
        raise ValueError(f"bad quoting in {raw}")
    return raw
