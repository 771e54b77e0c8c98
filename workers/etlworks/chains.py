"""Chains of Etlworks runs, read from the config alone: an ``etlworks_run`` whose outcome,
routed, runs it again, directly or through other runs, is reported when the config loads
(:func:`loops`, a check :func:`config.loader.load` runs), unless one of the runs in the loop says
``loop: true``. Pure.

The model: when the run of flow F ends (or starts: Etlworks may send ``flow_started`` too),
flowhooks routes an event of one of the kinds of :data:`OUTCOMES` with ``flow_id`` F, on any
source: the one of the event that caused the run (:func:`workers.synthetic.outcome_event`), whose
instance need not be the run's, or the one Etlworks sends its webhooks to. Those events are routed
through the tree as :mod:`workers.routing` does, and a success may also complete a join: the
actions so reached are what the run leads to. An ``etlworks_retry`` is reached but not
followed: it runs again the flow whose event reached it, at most ``max_attempts`` times, and
that rerun leads where the run it repeats already does. A join's ``on_expire`` and its
``join.expired`` events come at most once a window, and are not followed either.

Everything about the event but its source, flow, kind and status is unknown here (the flow's
name, its tags, the error, the ids, ``consecutive_failures``). A matcher on an unknown label
*may* match, so a route may or may not be taken, and both are followed: a child that may match
does not stop its later siblings, and its parent may be the result as well. The report may name
a loop that the events never take; it never misses one that they can.
"""

from collections.abc import Mapping, Sequence

from config.etlworks import RunAction
from config.joins import MEMBER_KIND
from config.matchers import Matcher
from config.schema import Config, Route

__all__ = ["OUTCOMES", "loops"]

OUTCOMES = (
    ("flow.succeeded", "success"),
    ("flow.warning", "warning"),
    ("flow.failed", "error"),
    ("flow.canceled", "canceled"),
    ("flow.timeout", ""),
    ("flow.running", "running"),
)
"""The (kind, status) of the events a run of a flow leads to."""
MAX_REPORTED = 100
"""Loops named at most: a tangle of runs has more loops than anyone reads (and finding them all
takes exponential time); fixing the first shows the next."""

Problem = tuple[tuple[str | int, ...], str]


def loops(config: Config) -> list[Problem]:
    """Every loop of ``etlworks_run`` actions, once, at the key path of the action first in it
    alphabetically: ``(("actions", "load-marts", "etlworks_run"), "runs flow 12346, whose
    outcome leads back to it: load-marts → refresh → load-marts (set loop: true if intended)")``.

    A run with ``loop: true`` takes no part, so that no loop through it is named. ``config``'s
    names must resolve (see :func:`config.schema.reference_errors`)."""
    runs = {
        name: action.etlworks_run
        for name, action in config.actions.items()
        if action.etlworks_run is not None and not action.etlworks_run.loop
    }
    graph = {name: sorted(_leads_to(config, run) & runs.keys()) for name, run in runs.items()}
    problems: list[Problem] = []
    for start in sorted(graph):
        for cycle in _cycles(graph, start, MAX_REPORTED - len(problems)):
            chain = " → ".join([*cycle, start])
            message = (
                f"runs flow {runs[start].flow_id}, whose outcome leads back to it: {chain} "
                "(set loop: true if intended)"
            )
            problems.append((("actions", start, "etlworks_run"), message))
    return problems


def _leads_to(config: Config, run: RunAction) -> set[str]:
    """The names of the actions the events of ``run``'s flow may reach."""
    reached: set[str] = set()
    for source in config.sources:
        for kind, status in OUTCOMES:
            labels = {"source": source, "flow_id": run.flow_id, "kind": kind, "status": status}
            reached |= _routed(config.routes, tuple(config.routes.actions or ()), labels)
            if kind == MEMBER_KIND:
                reached |= _joined(config, labels)
    return reached


def _may_match(matchers: Sequence[Matcher], labels: Mapping[str, str]) -> bool | None:
    """``True`` if every matcher matches, ``False`` if one does not, ``None`` if that depends
    on labels ``labels`` lacks (unknown here, so possibly anything)."""
    result: bool | None = True
    for matcher in matchers:
        if matcher.label not in labels:
            result = None
        elif not matcher.matches(labels):
            return False
    return result


def _routed(node: Route, actions: tuple[str, ...], labels: Mapping[str, str]) -> set[str]:
    """The actions of every route under ``node`` (whose actions, inherited, are ``actions``)
    that an event with ``labels`` may match, by the walk of :func:`workers.routing.match`."""
    found: set[str] = set()
    settled = False  # a child surely matched: the node itself is not a result
    for child in node.routes:
        hit = _may_match(child.matchers, labels)
        if hit is False:
            continue
        inherited = actions if child.actions is None else tuple(child.actions)
        found |= _routed(child, inherited, labels)
        if hit:
            settled = True
            if not child.continue_:
                break
    return found if settled else found | set(actions)


def _joined(config: Config, labels: Mapping[str, str]) -> set[str]:
    """The ``then`` actions of every join a success with ``labels`` may meet a member of (the
    other members may have been met already)."""
    return {
        name
        for join in config.joins.values()
        if any(_may_match(member.matchers, labels) is not False for member in join.all)
        for name in join.then
    }


def _cycles(graph: Mapping[str, Sequence[str]], start: str, limit: int) -> list[list[str]]:
    """Up to ``limit`` simple cycles through ``start`` whose other nodes all sort after it, in
    the order of ``graph``'s (sorted) successors; each without ``start`` at the end. Enumerating
    from each node this way finds every cycle once, from its first node."""
    back = _reaching(graph, start)
    found: list[list[str]] = []
    path = [start]

    def extend(node: str) -> None:
        for following in graph[node]:
            if len(found) >= limit:
                return
            if following == start:
                found.append(list(path))
            elif following in back and following not in path:
                path.append(following)
                extend(following)
                path.pop()

    extend(start)
    return found


def _reaching(graph: Mapping[str, Sequence[str]], start: str) -> set[str]:
    """The nodes after ``start`` (in sort order) from which ``start`` can be reached through
    such nodes: the only ones a cycle from ``start`` may pass through."""
    reaching: set[str] = set()
    todo = [start]
    while todo:
        target = todo.pop()
        for node, following in graph.items():
            if node > start and node not in reaching and target in following:
                reaching.add(node)
                todo.append(node)
    return reaching
