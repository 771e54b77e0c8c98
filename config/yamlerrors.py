"""YAML syntax errors said plainly: where (line and column, from 1) and what to do about it.

PyYAML words its errors for someone who knows its parser (``expected <block end>, but found
'<block mapping start>'``); the mistakes behind them are few and common: an indentation off by a
space, a tab, a ``: `` or a leading ``{``, ``*``, ``@`` in a value that needed quotes, a quote or
bracket never closed. :func:`describe` names the mistake when it recognises one, and keeps
PyYAML's own words when it does not.
"""

import re
from dataclasses import dataclass

import yaml

_QUOTE = "put the value in quotes"


@dataclass(frozen=True)
class Where:
    """A YAML mistake: its place (from 1) and what to tell the config's author."""

    line: int
    column: int
    message: str


def describe(exc: yaml.MarkedYAMLError) -> Where:
    """Where ``exc`` happened, with a plain message; PyYAML's own when no hint fits."""
    mark = exc.problem_mark
    problem = exc.problem or str(exc)
    context = exc.context or ""
    context_mark = exc.context_mark
    if "quoted scalar" in context and "end of stream" in problem and context_mark is not None:
        # the end of the file is no place to look for a quote opened far above it
        return Where(
            context_mark.line + 1,
            context_mark.column + 1,
            "this quote is never closed: end the value with the same quote it starts with",
        )
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    return Where(line, column, _hint(problem) or problem)


_HINTS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"expected <block end>, but found '<scalar>'"),
        "more text after a value that ended: a value starting with a quote, { or [ ends where"
        ' it closes, so put the whole value in quotes, such as "{{ event.flow_name }} failed"',
    ),
    (
        re.compile(r"expected <block end>, but found"),
        "this line is indented differently from the lines above it: the keys of one mapping,"
        " and the items of one list, start in the same column",
    ),
    (
        re.compile(r"mapping values are not allowed here"),
        "a ':' where no key can start: put a value holding ': ' in quotes, or look for a key"
        " above this line that lacks its ':'",
    ),
    (re.compile(r"found character '\\t'"), "a tab: YAML indents with spaces only"),
    (
        re.compile(r"found character '(.)' that cannot start any token"),
        "a value cannot start with %s: " + _QUOTE,
    ),
    (
        re.compile(r"expected the node content, but found '<stream end>'"),
        "the file ends inside a [ ] list or a { } mapping: one of them is never closed",
    ),
    (
        re.compile(r"expected ',' or '\]', but got"),
        "in a [ ] list, items are separated by commas: put an item that holds a comma or a"
        " quote in quotes of the other kind, as in ['kind=\"flow.failed\"']",
    ),
    (
        re.compile(r"expected ',' or '\}', but got"),
        "in a { } mapping, entries are separated by commas: one is missing, or the } is",
    ),
    (
        re.compile(r"found unknown escape character"),
        "in double quotes a backslash starts an escape: write a regex in single quotes"
        " ('\\d+'), or double the backslash",
    ),
    (
        re.compile(r"found undefined alias"),
        "a value starting with * is an alias of an &anchor: " + _QUOTE,
    ),
    (
        re.compile(r"but found another document"),
        "the config is one YAML document: remove the --- line",
    ),
    (
        re.compile(r"could not determine a constructor for the tag"),
        "YAML tags (!!...) are not allowed in the config: " + _QUOTE,
    ),
    (
        re.compile(r"a key must be a name|found unhashable key"),
        "a key must be a name, and a value starting with { or [ is a mapping or a list: put a"
        " template such as {{ event.flow_name }} in quotes",
    ),
]


def _hint(problem: str) -> str | None:
    for pattern, hint in _HINTS:
        found = pattern.search(problem)
        if found is not None:
            return hint % found.groups() if found.groups() else hint
    return None
