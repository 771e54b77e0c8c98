"""The canonical event: what every Etlworks webhook is normalized into, and what rules match on."""

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict
from pydantic_core import to_json

Kind = Literal[
    "flow.succeeded",
    "flow.warning",
    "flow.failed",
    "flow.canceled",
    "flow.running",
    "flow.timeout",
    "join.expired",
    "expectation.missed",
    "webhook.missing",
    "webhook.resumed",
    "resource.changed",
    "other",
]
Status = Literal["queued", "running", "success", "warning", "error", "canceled"]

LABELS = (
    "id",
    "source",
    "event",
    "kind",
    "status",
    "flow_id",
    "flow_name",
    "audit_id",
    "webhook_id",
    "entity_id",
    "entity_url",
    "error",
)
"""The single-valued labels rules can match on (``tags`` matches if any tag does)."""


class Event(BaseModel):
    """One received (or synthetic) event. Everything except ``raw`` is a matchable label."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    source: str
    event: str
    kind: Kind
    status: Status | None = None
    flow_id: str | None = None
    flow_name: str | None = None
    audit_id: str | None = None
    webhook_id: str | None = None
    entity_id: str | None = None
    entity_url: str | None = None
    tags: list[str] = []
    params: dict[str, str] = {}
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None
    sent_at: datetime | None = None
    received_at: datetime
    triggered_by: str | None = None
    """For an event flowhooks made (the outcome of a run it started): the ref of its cause."""
    chain_depth: int = 0
    """How many runs flowhooks started, one causing the next, led to this event."""
    via: str | None = None
    """How flowhooks learnt of a run's end when no webhook told it: ``reconcile`` (read from
    the execution history); ``None`` for a webhook or an event flowhooks made."""
    raw: Any = None


def dump_json(fields: Mapping[str, Any]) -> bytes:
    """``Event.model_construct(**fields).model_dump_json()``, byte for byte, without the model.

    ``fields`` holds every field of :class:`Event` in the model's order, each value of its
    field's type (as ``receiver.normalize.fields`` makes them). orjson writes what pydantic
    writes for these (datetimes in UTC end in ``Z``, infinite floats are ``null``) in a third
    of the time; what it refuses (an integer past 64 bits in ``raw``) pydantic's own
    serializer writes. Tests hold both to the model's bytes.
    """
    try:
        return orjson.dumps(fields, option=orjson.OPT_UTC_Z)
    except orjson.JSONEncodeError:
        return to_json(fields, inf_nan_mode="null")


_DIGITS = re.compile(r"[0-9]+")
_NUMBERS = (int, float)
_YEAR_10000_MS = 253_402_300_800_000


def instant(value: Any) -> datetime | None:
    """A time as Etlworks writes one: epoch seconds or milliseconds (above 10^12, as digits or
    a number) or an ISO 8601 string, as UTC; ``None`` for anything else."""
    if type(value) is int and 10**12 < value < _YEAR_10000_MS:  # the usual: epoch milliseconds
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    try:
        if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
            value = int(value.strip())  # str.isdigit also admits digits int() refuses
        if isinstance(value, _NUMBERS) and not isinstance(value, bool):
            return datetime.fromtimestamp(value / 1000 if value > 10**12 else value, tz=UTC)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.strip())
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None
