"""What every section of the config schema is built from: the strict, frozen model and the
matcher field. Its own module, so that sections kept apart (:mod:`config.joins`,
:mod:`config.etlworks`) and :mod:`config.schema`, which gathers them, share one of each."""

from typing import Annotated, get_args

from pydantic import BaseModel, ConfigDict, PlainSerializer, PlainValidator

from config.events import LABELS, Kind, Status
from config.matchers import Matcher
from config.matchers import parse as parse_matcher

DERIVED = ("consecutive_failures",)
"""Labels a worker adds when it routes an event: how many times in a row, this event included,
the flow has failed (0 for a success), kept in Redis and reset by a success."""
MATCHABLE = (*LABELS, *DERIVED, "tags")
CLOSED: dict[str, tuple[str, ...]] = {"kind": get_args(Kind), "status": ("", *get_args(Status))}
"""The labels whose every value is known, so that a matcher naming none of them is refused
(``status`` may be absent, so the empty string is one of its values)."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


def _matcher(value: object) -> Matcher:
    if isinstance(value, Matcher):
        return value
    if not isinstance(value, str):
        raise ValueError('must be a matcher string such as kind="flow.failed"')
    return parse_matcher(value, MATCHABLE, CLOSED)


MatcherField = Annotated[Matcher, PlainValidator(_matcher), PlainSerializer(str)]
