"""The routing tree: which routes an event matches, and with what settings. Pure.

Alertmanager's semantics: the root matches every event and is the default. A matching node
tries its children in order; the first child that matches wins, unless that child says
``continue: true``, in which case the next children are tried as well. A node none of whose
children match is itself the result. Children inherit every setting they leave unset.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from config.schema import Route

DEFAULT_REPEAT_INTERVAL = 4 * 3600.0
DEFAULT_GROUP_WAIT = 30.0
DEFAULT_GROUP_INTERVAL = 300.0


@dataclass(frozen=True)
class Match:
    """A route an event matched, with its settings after inheritance."""

    path: str
    """The route's ``name:``, else its key path in the config (``routes``, ``routes.routes[1]``…):
    what incidents, repeat intervals, delivery ids and timelines are kept under, so a named
    route keeps them when the tree is reordered."""
    actions: tuple[str, ...]
    resolve: bool
    repeat_interval: float
    group_by: tuple[str, ...]
    group_wait: float
    group_interval: float
    mute_time_intervals: tuple[str, ...]
    active_time_intervals: tuple[str, ...]
    confirm: bool = False
    """Etlworks actions act only once the executions API confirms the event's status."""
    location: str = "routes"
    """The route's key path in the config, whatever its name."""


_ROOT = Match(
    path="routes",
    actions=(),
    resolve=False,
    repeat_interval=DEFAULT_REPEAT_INTERVAL,
    group_by=(),
    group_wait=DEFAULT_GROUP_WAIT,
    group_interval=DEFAULT_GROUP_INTERVAL,
    mute_time_intervals=(),
    active_time_intervals=(),
)


def match(tree: Route, labels: Mapping[str, str], tags: Sequence[str] = ()) -> list[Match]:
    """The routes an event with ``labels`` and ``tags`` goes to, in tree order."""
    return _walk(tree, _inherit(_ROOT, tree, "routes"), labels, tags)


@dataclass(frozen=True)
class Node:
    """A route of the tree with its settings after inheritance, for showing the tree."""

    route: Route
    settings: Match
    children: tuple["Node", ...]


def expand(root: Route) -> Node:
    """The whole tree, every route with the settings it routes with (``flowhooks routes
    show``): the same inheritance :func:`match` applies."""

    def build(node: Route, settings: Match) -> Node:
        children = (
            build(child, _inherit(settings, child, f"{settings.location}.routes[{i}]"))
            for i, child in enumerate(node.routes)
        )
        return Node(node, settings, tuple(children))

    return build(root, _inherit(_ROOT, root, "routes"))


def _walk(
    node: Route, settings: Match, labels: Mapping[str, str], tags: Sequence[str]
) -> list[Match]:
    found: list[Match] = []
    for i, child in enumerate(node.routes):
        if not all(m.matches(labels, tags) for m in child.matchers):
            continue
        child_settings = _inherit(settings, child, f"{settings.location}.routes[{i}]")
        found.extend(_walk(child, child_settings, labels, tags))
        if not child.continue_:
            break
    return found or [settings]


def _inherit(parent: Match, node: Route, path: str) -> Match:
    def tuple_or(value: list[str] | None, inherited: tuple[str, ...]) -> tuple[str, ...]:
        return inherited if value is None else tuple(value)

    def number_or(value: float | None, inherited: float) -> float:
        return inherited if value is None else value

    return Match(
        path=node.name or path,
        location=path,
        actions=tuple_or(node.actions, parent.actions),
        resolve=parent.resolve if node.resolve is None else node.resolve,
        repeat_interval=number_or(node.repeat_interval, parent.repeat_interval),
        group_by=tuple_or(node.group_by, parent.group_by),
        group_wait=number_or(node.group_wait, parent.group_wait),
        group_interval=number_or(node.group_interval, parent.group_interval),
        mute_time_intervals=tuple_or(node.mute_time_intervals, parent.mute_time_intervals),
        active_time_intervals=tuple_or(node.active_time_intervals, parent.active_time_intervals),
        confirm=parent.confirm if node.confirm is None else node.confirm,
    )
