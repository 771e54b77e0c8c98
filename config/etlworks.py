"""The config's Etlworks side: the API instances (``etlworks:``) and the actions that act on
them (``etlworks_run``, ``etlworks_retry``, ``etlworks_schedule``, ``etlworks_request``).

    etlworks:
      prod: {url: "https://app.etlworks.com/rest", api_key: "${ETLWORKS_API_KEY}"}
    actions:
      load-marts:  {etlworks_run: {flow_id: 12346, params: {runDate: "{{ event.params.runDate }}"},
                                   wait: 2h}}
      retry-twice: {etlworks_retry: {max_attempts: 2, delay: 5m, escalate: [oncall]}}
      pause-load:  {etlworks_schedule: {schedule_id: 77, enabled: false}}

Every string an action sends (parameters, a request's path and body) is a template over the
event, compiled when the config loads. An action uses the instance it names, else its event's
source's, else the only one there is.
"""

from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, field_validator

from config.base import Strict
from config.durations import Duration
from config.secrets import Secret
from config.templates import compile_template

ACTIONS = ("etlworks_run", "etlworks_retry", "etlworks_schedule", "etlworks_request")
TRIGGER_PARAM = "flowhooks_trigger"
"""The run parameter naming the trigger that started a run, by which a run is found again."""


def _id(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip():
        raise ValueError("must be an id: a number or a non-empty string")
    return str(value).strip()


Id = Annotated[str, BeforeValidator(_id)]


def _template(source: str) -> str:
    compile_template(source)
    return source


Template = Annotated[str, AfterValidator(_template)]


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be longer than zero")
    return value


Positive = Annotated[Duration, AfterValidator(_positive)]


class Reconcile(Strict):
    """How often the execution history is read for runs whose webhook never came, and which
    runs a pass reads: those that ended since the last pass, less ``overlap``, and at least
    ``settle`` ago (a webhook may still be on its way, or in the queue)."""

    interval: Positive = 300.0
    overlap: Duration = 600.0
    settle: Duration = 60.0
    lookback: Positive = 3600.0
    """How far back the first pass reads (there is no last pass yet)."""
    missing_after: int = Field(default=3, ge=1)
    """Runs routed by reconciling, none by its webhook, after which a source's webhooks are
    missing (a ``webhook.missing`` event)."""


class Instance(Strict):
    """One Etlworks API: its base URL (``.../rest``) and an API key, sent as a Bearer token."""

    url: str
    api_key: Secret
    timeout: Positive = 30.0
    ui_url: str | None = None
    """An execution's page in Etlworks' own UI, with ``{flow_id}`` and ``{audit_id}`` in it:
    the console links each event's run there."""

    reconcile: Reconcile | bool = True
    """Read the execution history for runs whose webhook never came (on by default for an
    instance a source names; ``false`` turns it off, ``{interval: 5m, ...}`` tunes it)."""

    @property
    def reconciling(self) -> Reconcile | None:
        """How this instance is reconciled, ``None`` when it is not."""
        if self.reconcile is False:
            return None
        return Reconcile() if self.reconcile is True else self.reconcile

    audit: bool = False
    """Enrich a flow's failure with the flow's latest change from the audit log (who, what,
    when): :mod:`workers.etlworks.audit`."""

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        return url.rstrip("/")

    @field_validator("ui_url")
    @classmethod
    def _page(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        try:
            url.format(flow_id="", audit_id="")
        except (KeyError, IndexError, ValueError):
            raise ValueError("may hold {flow_id} and {audit_id}, and no other {...}") from None
        return url

    def execution_page(self, flow_id: str, audit_id: str) -> str | None:
        """The run's page in Etlworks' UI (``None`` without ``ui_url``)."""
        if self.ui_url is None:
            return None
        flow, audit = quote(flow_id, safe=""), quote(audit_id, safe="")
        return self.ui_url.format(flow_id=flow, audit_id=audit)


class RunAction(Strict):
    """Run a flow with templated parameters; with ``wait``, follow the run until it ends (or
    the wait is over) and route its outcome as an event of its own."""

    flow_id: Id
    params: dict[str, Template] = {}
    wait: Positive | None = None
    instance: str | None = None
    loop: bool = False
    """The outcome of this run may lead to running it again: declared, not a mistake."""

    @field_validator("params")
    @classmethod
    def _not_reserved(cls, params: dict[str, str]) -> dict[str, str]:
        if TRIGGER_PARAM in params:
            raise ValueError(f"{TRIGGER_PARAM} is set by flowhooks to find its runs again")
        return params


class Budget(Strict):
    """At most ``runs`` retries of one flow in any ``per`` (a rolling window)."""

    runs: int = Field(ge=1)
    per: Positive


class RetryAction(Strict):
    """Run the failed flow again, with the parameters its event carries, after ``delay``
    (doubled for each further attempt); ``escalate`` once the attempts or the budget are spent,
    or the last retry failed as well."""

    max_attempts: int = Field(default=1, ge=1)
    """Retries per original run: the original and its retries form one chain."""
    delay: Duration = 60.0
    backoff: float = Field(default=2.0, ge=1.0)
    budget: Budget | None = None
    escalate: list[str] = []
    wait: Positive | None = None
    """Follow each retry as ``etlworks_run`` does, for when Etlworks sends no webhook."""
    instance: str | None = None


class ScheduleAction(Strict):
    """Disable (the default) or enable a flow's schedule."""

    schedule_id: Id
    enabled: bool = False
    instance: str | None = None


class RequestAction(Strict):
    """Any other API call: a method, a templated path under the instance's URL and an
    optional JSON body whose strings are templates."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    path: Template
    body: Any = None
    instance: str | None = None

    @field_validator("path")
    @classmethod
    def _relative(cls, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError("must start with / (it is appended to the instance's url)")
        return path

    @field_validator("body")
    @classmethod
    def _templates(cls, body: Any) -> Any:
        for text in _strings(body):
            compile_template(text)
        return body


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


EtlworksAction = RunAction | RetryAction | ScheduleAction | RequestAction
