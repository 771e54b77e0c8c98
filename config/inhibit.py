"""Inhibition, as Alertmanager's ``inhibit_rules``: while an incident opened by an event matching
a rule's ``source_matchers`` is open, the notifications of events matching its
``target_matchers`` are held back, when both events have equal values of the ``equal`` labels.
The schema and the pure question of which open incident inhibits an event (:func:`inhibiting`).

    inhibit_rules:
      - source_matchers: ['kind="flow.failed"', 'flow_name="warehouse-load"']
        target_matchers: ['kind="flow.failed"', 'flow_name=~"marts-.*"']
        equal: [source]

An event never inhibits itself, nor its own flow's (or expectation's) later events: a flow
failing again is a repeat, which ``repeat_interval`` governs. A resolve is never inhibited.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from config.base import MatcherField, Strict
from config.events import LABELS
from config.matchers import Matcher


def _equal(names: list[str]) -> list[str]:
    for i, name in enumerate(names):
        if name not in LABELS:
            raise ValueError(f"unknown label {name!r} (known: {', '.join(sorted(LABELS))})")
        if name in names[:i]:
            raise ValueError(f"{name!r} is listed twice")
    return names


OPENING_KINDS = ("flow.failed", "flow.timeout", "expectation.missed")
"""The kinds of event that open an incident, so the only ones that can inhibit."""


def _opening(matchers: list[Matcher]) -> list[Matcher]:
    for matcher in matchers:
        if matcher.label == "kind" and not any(
            matcher.matches({"kind": kind}) for kind in OPENING_KINDS
        ):
            raise ValueError(
                f"{matcher} never inhibits: only events that open an incident do"
                f" ({', '.join(OPENING_KINDS)})"
            )
    return matchers


class InhibitRule(Strict):
    source_matchers: Annotated[list[MatcherField], AfterValidator(_opening)] = Field(min_length=1)
    target_matchers: list[MatcherField] = Field(min_length=1)
    equal: Annotated[list[str], AfterValidator(_equal)] = Field(default_factory=list)


@dataclass(frozen=True)
class Inhibitor:
    """An open incident that may inhibit: where it is kept (``source:scope``, see
    :func:`workers.delivery.incident_scope`), the event that opened it and its labels."""

    key: str
    ref: str
    labels: Mapping[str, str]
    tags: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"ref": self.ref, "labels": dict(self.labels), "tags": list(self.tags)}

    @classmethod
    def from_json(cls, key: str, data: Mapping[str, Any]) -> "Inhibitor":
        return cls(key, str(data["ref"]), dict(data["labels"]), tuple(data.get("tags") or ()))

    def describe(self) -> str:
        """``etl:evt-1 (flow.failed warehouse-load)``: the event, and what it was."""
        what = " ".join(v for v in (self.labels.get("kind"), self.labels.get("flow_name")) if v)
        return f"{self.ref} ({what})" if what else self.ref


def _all(matchers: Sequence[Any], labels: Mapping[str, str], tags: Sequence[str]) -> bool:
    return all(m.matches(labels, tags) for m in matchers)


def is_source(rules: Sequence[InhibitRule], labels: Mapping[str, str], tags: Sequence[str]) -> bool:
    """Whether an event with ``labels`` matches the source matchers of any rule."""
    return any(_all(rule.source_matchers, labels, tags) for rule in rules)


def inhibiting(
    rules: Sequence[InhibitRule],
    labels: Mapping[str, str],
    tags: Sequence[str],
    inhibitors: Sequence[Inhibitor],
    *,
    own: str | None,
) -> Inhibitor | None:
    """The first open incident that inhibits an event with ``labels`` and ``tags`` whose own
    incident would be kept under ``own``; ``None`` when none does. Pure."""
    for rule in rules:
        if not _all(rule.target_matchers, labels, tags):
            continue
        for inhibitor in inhibitors:
            if (
                inhibitor.key == own
                or inhibitor.ref == f"{labels.get('source')}:{labels.get('id')}"
            ):
                continue
            if not _all(rule.source_matchers, inhibitor.labels, inhibitor.tags):
                continue
            if all(labels.get(n, "") == inhibitor.labels.get(n, "") for n in rule.equal):
                return inhibitor
    return None
