"""The config file's schema. Unknown keys are errors; every model is frozen once loaded."""

import math
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    SecretStr,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from config.base import MATCHABLE, MatcherField, Strict
from config.durations import Duration, PositiveDuration
from config.etlworks import ACTIONS as ETLWORKS_ACTIONS
from config.etlworks import (
    EtlworksAction,
    Instance,
    RequestAction,
    RetryAction,
    RunAction,
    ScheduleAction,
)
from config.expectations import Expectation
from config.inhibit import InhibitRule
from config.joins import Join
from config.secrets import Secret, Unresolved, whsec
from config.sinks import (
    SETTINGS,
    AppriseAction,
    EmailAction,
    GoogleChatAction,
    LogAction,
    OpsgenieAction,
    PagerDutyAction,
    SlackAction,
    SmtpServer,
    StandardWebhooksSigning,
    TeamsAction,
    WebhookAction,
)
from config.templates import compile_template
from config.timeintervals import TimeIntervalSpec

__all__ = [
    "COLLAPSIBLE",
    "NOTIFIERS",
    "SINKS",
    "TEMPLATES",
    "Action",
    "AppriseAction",
    "EmailAction",
    "GoogleChatAction",
    "LogAction",
    "OpsgenieAction",
    "PagerDutyAction",
    "SlackAction",
    "SmtpServer",
    "StandardWebhooksSigning",
    "TeamsAction",
    "WebhookAction",
]

SOURCE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
SourceName = Annotated[str, StringConstraints(pattern=SOURCE_NAME)]
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


def _header_name(value: str) -> str:
    if not _TOKEN.fullmatch(value):
        raise ValueError("must be an HTTP header name (letters, digits and !#$%&'*+.^_`|~-)")
    return value


HeaderName = Annotated[str, AfterValidator(_header_name)]

_EVENT_HEADERS = {
    *(f"x-etl-webhook-{s}" for s in ("event-id", "event", "id", "entity-id", "entity-url")),
    "webhook-id",
    "webhook-timestamp",
}


def _secret_header(value: str) -> str:
    """A header carrying a secret must not be one whose value becomes part of the event (its
    id or labels), which is logged, stored and answered."""
    if value.lower() in _EVENT_HEADERS:
        raise ValueError(f"{value} carries event data, not a secret: choose another header")
    return _header_name(value)


SecretHeaderName = Annotated[str, AfterValidator(_secret_header)]


class HmacCheck(Strict):
    """HMAC of the raw body (or of ``{timestamp}.{body}`` with ``timestamp_header``)."""

    header: SecretHeaderName = "X-Etl-Webhook-Signature"
    algorithm: Literal["sha1", "sha256", "sha512"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str | None = None
    """Stripped from the header value when present; ``None`` means ``{algorithm}=``."""
    secrets: list[Secret] = Field(min_length=1)
    timestamp_header: HeaderName | None = None
    tolerance: Duration = 300.0


class StandardWebhooksCheck(Strict):
    """The Standard Webhooks scheme (``webhook-id``, ``-timestamp`` and ``-signature`` headers)."""

    secrets: list[Secret] = Field(min_length=1)
    tolerance: Duration = 300.0

    @field_validator("secrets")
    @classmethod
    def _whsec(cls, secrets: list[SecretStr]) -> list[SecretStr]:
        for secret in secrets:
            whsec(secret, "each secret")
        return secrets


class BasicCheck(Strict):
    username: str = Field(min_length=1)
    password: Secret

    @field_validator("username")
    @classmethod
    def _no_colon(cls, username: str) -> str:
        if ":" in username:  # RFC 7617: the first colon ends the user-id
            raise ValueError("must not contain a colon")
        return username


class HeaderTokenCheck(Strict):
    header: SecretHeaderName
    token: Secret


CHECKS = ("hmac", "standard_webhooks", "basic", "header_token")


class VerifyStep(Strict):
    """One entry of a source's ``verify:`` list, naming exactly one check."""

    hmac: HmacCheck | None = None
    standard_webhooks: StandardWebhooksCheck | None = None
    basic: BasicCheck | None = None
    header_token: HeaderTokenCheck | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "VerifyStep":
        named = [name for name in CHECKS if getattr(self, name) is not None]
        if len(named) != 1:
            raise ValueError(f"must name exactly one check: {', '.join(CHECKS)}")
        return self

    @property
    def kind(self) -> str:
        return next(name for name in CHECKS if getattr(self, name) is not None)


class Source(Strict):
    """A webhook endpoint, served at ``/webhooks/{name}``; every ``verify`` step must pass."""

    verify: list[VerifyStep] = []
    allow_unsigned: bool = False
    etlworks: SourceName | None = None
    """The Etlworks instance (``etlworks:``) this source's follow-up actions use."""

    @model_validator(mode="after")
    def _signed(self) -> "Source":
        if not self.verify and not self.allow_unsigned:
            raise ValueError("has no verify checks: add one, or set allow_unsigned: true")
        if self.verify and self.allow_unsigned:
            raise ValueError("allow_unsigned: true contradicts the verify checks listed")
        return self


# Actions ------------------------------------------------------------------------------------

TEMPLATES: dict[str, tuple[str, ...]] = {
    name: settings.TEMPLATES for name, settings in SETTINGS.items()
}
"""The templates each kind of action renders, any of which an action may override."""


def _a_number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    return value


def _at_least_one(value: float) -> float:
    if not (math.isfinite(value) and value >= 1):
        raise ValueError("must be a number of at least 1")
    return value


def _fraction(value: float) -> float:
    if not 0 <= value <= 1:
        raise ValueError("must be a number from 0 to 1")
    return value


Factor = Annotated[float, BeforeValidator(_a_number), AfterValidator(_at_least_one)]
Fraction = Annotated[float, BeforeValidator(_a_number), AfterValidator(_fraction)]


class RetryPolicy(Strict):
    """Exponential backoff with jitter: ``initial``, then multiplied by ``factor`` up to
    ``max_interval``, giving up once ``give_up_after`` has passed since the first attempt
    (``0`` gives up after the first attempt)."""

    initial: PositiveDuration = 10.0
    factor: Factor = 2.0
    max_interval: Duration = 3600.0
    jitter: Fraction = 0.2
    give_up_after: Duration = 86400.0

    @model_validator(mode="after")
    def _ordered(self) -> "RetryPolicy":
        if self.max_interval < self.initial:
            raise ValueError("max_interval must not be shorter than initial")
        return self


COLLAPSIBLE = frozenset(name for name, settings in SETTINGS.items() if settings.COLLAPSIBLE)
"""Destinations whose waiting notifications go out as one digest in a storm (``collapse``): a
chat or a mailbox, read by people. PagerDuty folds repeats by its own ``dedup_key``."""


class Collapse(Strict):
    """More than ``after`` notifications waiting in an action's lane go out as one digest."""

    after: int = Field(5, ge=1)


def _collapse(value: object) -> object:
    """``collapse: false`` turns it off (``None``), ``true`` keeps the defaults."""
    if value is False:
        return None
    return {} if value is True else value


class Circuit(Strict):
    """The action's circuit breaker: ``after`` failures in a row open it; after ``cool_down``
    one probe is sent (half open), which closes it or opens it again for twice as long, up to
    ``max_cool_down``."""

    after: int = Field(5, ge=1)
    cool_down: PositiveDuration = 30.0
    max_cool_down: Duration = 600.0

    @model_validator(mode="after")
    def _ordered(self) -> "Circuit":
        if self.max_cool_down < self.cool_down:
            raise ValueError("max_cool_down must not be shorter than cool_down")
        return self


def _is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return False
    printable = all(" " < char < "\x7f" for char in value)
    return printable and parts.scheme in ("http", "https") and bool(parts.hostname)


NOTIFIERS = tuple(SETTINGS)
SINKS = (*NOTIFIERS, *ETLWORKS_ACTIONS)
_URLS = {name: settings.URL for name, settings in SETTINGS.items() if settings.URL is not None}


def _compiles(source: str) -> str:
    # autoescape changes what a template renders, not what compiles: one check serves text and
    # HTML templates alike
    compile_template(source)
    return source


class Action(Strict):
    """A named action: exactly one sink, plus what every sink shares."""

    slack: SlackAction | None = None
    pagerduty: PagerDutyAction | None = None
    email: EmailAction | None = None
    webhook: WebhookAction | None = None
    log: LogAction | None = None
    teams: TeamsAction | None = None
    opsgenie: OpsgenieAction | None = None
    google_chat: GoogleChatAction | None = None
    apprise: AppriseAction | None = None
    etlworks_run: RunAction | None = None
    etlworks_retry: RetryAction | None = None
    etlworks_schedule: ScheduleAction | None = None
    etlworks_request: RequestAction | None = None
    send_resolved: bool = True
    retry: RetryPolicy = RetryPolicy()
    circuit: Circuit = Circuit()
    collapse: Annotated[Collapse | None, BeforeValidator(_collapse)] = Collapse()
    """``false`` sends every notification of a storm on its own; ``{after: N}`` sets when a
    storm begins. Only slack and email actions collapse (:data:`COLLAPSIBLE`)."""
    templates: dict[str, Annotated[str, AfterValidator(_compiles)]] = {}
    """Compiled at load so that a broken one fails the load; an undefined name is only known
    when rendering, which fails then (strict undefined)."""

    @field_validator(*_URLS)
    @classmethod
    def _http_url(cls, sink: Strict | None, info: ValidationInfo) -> Strict | None:
        """Checked here rather than in the sink's model, which the sinks' tests build with
        URLs no config may hold; the message never quotes the URL, which may be a secret."""
        if sink is not None and info.field_name is not None:
            field = _URLS[info.field_name]
            value = getattr(sink, field)
            if value is None or isinstance(value, Unresolved):
                return sink
            text = value.get_secret_value() if isinstance(value, SecretStr) else value
            if not _is_http_url(text):
                raise ValueError(f"{field} must be an http:// or https:// URL")
        return sink

    @field_validator("templates")
    @classmethod
    def _known_templates(cls, templates: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        # the sinks are declared, so validated, before the templates
        named = [name for name in SINKS if info.data.get(name) is not None]
        if len(named) == 1 and named[0] in ETLWORKS_ACTIONS and templates:
            raise ValueError(f"{named[0]} has no templates: its own fields are templates")
        if len(named) == 1 and named[0] in TEMPLATES:
            known = TEMPLATES[named[0]]
            for name in templates:
                if name not in known:
                    raise ValueError(
                        f"{named[0]} has no template {name!r} (known: {', '.join(known)})"
                    )
        return templates

    @model_validator(mode="after")
    def _one_sink(self) -> "Action":
        named = [name for name in SINKS if getattr(self, name) is not None]
        if len(named) != 1:
            raise ValueError(f"must name exactly one of {', '.join(SINKS)}")
        return self

    @model_validator(mode="after")
    def _collapsible(self) -> "Action":
        collapse = self.model_fields_set & {"collapse"} and self.collapse is not None
        if collapse and self.sink not in COLLAPSIBLE:
            known = ", ".join(sorted(COLLAPSIBLE))
            raise ValueError(f"collapse: {self.sink} actions do not collapse (only {known})")
        return self

    @property
    def collapse_after(self) -> int | None:
        """How many waiting notifications make a storm, ``None`` when they never collapse."""
        if self.sink not in COLLAPSIBLE or self.collapse is None:
            return None
        return self.collapse.after

    @property
    def sink(self) -> str:
        return next(name for name in SINKS if getattr(self, name) is not None)

    @property
    def settings(self) -> BaseModel:
        """The settings of the action's destination (or Etlworks action)."""
        settings: BaseModel = getattr(self, self.sink)
        return settings

    @property
    def etlworks(self) -> EtlworksAction | None:
        """The Etlworks action, when this is one."""
        sink = self.sink
        return getattr(self, sink) if sink in ETLWORKS_ACTIONS else None


# Routes -------------------------------------------------------------------------------------


def _labels(values: list[str]) -> list[str]:
    if "..." in values and len(values) > 1:
        raise ValueError("... groups by every label: list it alone")
    for i, value in enumerate(values):
        if value not in MATCHABLE and value != "...":
            raise ValueError(f"unknown label {value!r} (known: {', '.join(sorted(MATCHABLE))})")
        if value in values[:i]:
            raise ValueError(f"{value!r} is listed twice")
    return values


ROUTE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""Letters, digits, ``_`` and ``-``: never a key path (``routes.routes[1]``) nor a join's
route (``joins.marts``), which the names stand beside."""


def _route_name(value: str) -> str:
    if not ROUTE_NAME.fullmatch(value):
        raise ValueError(
            "must be letters, digits, _ and - (at most 64), starting with one of the first two"
        )
    if value == "routes":
        raise ValueError("'routes' is the root route's path: choose another name")
    return value


RouteName = Annotated[str, AfterValidator(_route_name)]


class Route(Strict):
    """A node of the routing tree. Unset fields are inherited from the parent."""

    name: RouteName | None = None
    """What incidents, repeat intervals, delivery ids and timelines know the route by, in place
    of its key path: a named route keeps them when the tree is reordered. Unique."""
    matchers: list[MatcherField] = []
    actions: list[str] | None = None
    continue_: bool = Field(default=False, alias="continue")
    """Written ``continue`` only: ``continue_`` is Python's name for it, not the config's."""
    resolve: bool | None = None
    repeat_interval: Duration | None = None
    group_by: Annotated[list[str], AfterValidator(_labels)] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    mute_time_intervals: list[str] | None = None
    active_time_intervals: list[str] | None = None
    confirm: bool | None = None
    """Before an Etlworks action, ask the executions API whether the run ended as the event
    says; act only if it agrees, with the event enriched from the record."""
    routes: list["Route"] = []


class Config(Strict):
    sources: dict[SourceName, Source] = Field(min_length=1)
    actions: dict[SourceName, Action] = {}
    routes: Route = Route()
    time_intervals: dict[SourceName, list[TimeIntervalSpec]] = {}
    etlworks: dict[SourceName, Instance] = {}
    joins: dict[SourceName, Join] = {}
    expect: dict[SourceName, Expectation] = {}
    inhibit_rules: list[InhibitRule] = []

    @field_validator("routes")
    @classmethod
    def _root(cls, root: Route) -> Route:
        """The root is the default every event reaches: matchers or ``continue`` there would
        be ignored by the routing, so they are refused rather than silently dropped."""
        if root.matchers:
            raise ValueError("the root route matches every event: it takes no matchers")
        if root.continue_:
            raise ValueError("the root route has no sibling to continue to")
        return root


def reference_errors(config: Config) -> list[tuple[tuple[str | int, ...], str]]:
    """Names used in the routing tree that the config does not define, with their key paths."""
    errors: list[tuple[tuple[str | int, ...], str]] = []

    named: dict[str, tuple[str | int, ...]] = {}

    def check(route: Route, path: tuple[str | int, ...]) -> None:
        if route.name is not None:
            if route.name in named:
                where = "".join(
                    f"[{p}]" if isinstance(p, int) else f".{p}" for p in named[route.name]
                ).lstrip(".")
                errors.append(((*path, "name"), f"{route.name!r} names {where} already"))
            named.setdefault(route.name, path)
        for i, name in enumerate(route.actions or ()):
            if name not in config.actions:
                known = ", ".join(sorted(config.actions)) or "none defined"
                errors.append(((*path, "actions", i), f"unknown action {name!r} (known: {known})"))
        for field in ("mute_time_intervals", "active_time_intervals"):
            for i, name in enumerate(getattr(route, field) or ()):
                if name not in config.time_intervals:
                    known = ", ".join(sorted(config.time_intervals)) or "none defined"
                    message = f"unknown time interval {name!r} (known: {known})"
                    errors.append(((*path, field, i), message))
        for i, child in enumerate(route.routes):
            check(child, (*path, "routes", i))

    check(config.routes, ("routes",))
    errors.extend(_etlworks_errors(config))
    for name, join in config.joins.items():
        for field in ("then", "on_expire"):
            errors.extend(_action_names(config, getattr(join, field), ("joins", name, field)))
    return errors


def _action_names(
    config: Config, names: list[str], path: tuple[str | int, ...]
) -> list[tuple[tuple[str | int, ...], str]]:
    known = ", ".join(sorted(config.actions)) or "none defined"
    return [
        ((*path, i), f"unknown action {name!r} (known: {known})")
        for i, name in enumerate(names)
        if name not in config.actions
    ]


def _etlworks_errors(config: Config) -> list[tuple[tuple[str | int, ...], str]]:
    errors: list[tuple[tuple[str | int, ...], str]] = []
    known = ", ".join(sorted(config.etlworks)) or "none defined"
    for name, source in config.sources.items():
        if source.etlworks is not None and source.etlworks not in config.etlworks:
            message = f"unknown Etlworks instance {source.etlworks!r} (known: {known})"
            errors.append((("sources", name, "etlworks"), message))
    for name, action in config.actions.items():
        acting = action.etlworks
        if acting is None:
            continue
        path: tuple[str | int, ...] = ("actions", name, action.sink)
        if acting.instance is not None and acting.instance not in config.etlworks:
            message = f"unknown Etlworks instance {acting.instance!r} (known: {known})"
            errors.append(((*path, "instance"), message))
        elif not config.etlworks:
            errors.append((path, "acts on Etlworks, but no etlworks: instance is defined"))
        if isinstance(acting, RetryAction):
            errors.extend(_action_names(config, acting.escalate, (*path, "escalate")))
            errors.extend(
                ((*path, "escalate", i), "escalates to another Etlworks action: name notifiers")
                for i, other in enumerate(acting.escalate)
                if other in config.actions and config.actions[other].etlworks is not None
            )
    return errors
