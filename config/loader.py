"""Load and validate the config file, with errors that point at file, line and key path:

flowhooks.yaml:12: sources.prod.verify[0].hmac.algorithm: must be one of sha1, sha256, sha512

and, for YAML syntax, at line and column with a plain hint (:mod:`config.yamlerrors`):

flowhooks.yaml:4:4: invalid YAML: this line is indented differently from the lines above it...
"""

import os
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from config import yamlerrors
from config.schema import Config, reference_errors
from config.secrets import Unresolved

Path_ = tuple[str | int, ...]
Check = Callable[[Config], list[tuple[Path_, str]]]
"""A further check of a valid config whose names all resolve: its problems, each at a key path,
reported as :func:`~config.schema.reference_errors` are. Passed in by the caller, so that checks
living above ``config`` (the chains of :mod:`workers.etlworks.chains`) run at every load."""


NO_SECRETS: tuple[str, ...] = ("routes",)
"""A ``secrets_of`` under which a config holds no secret: loading with it requires none, for a
command that only reads the rules (``routes show``, ``routes test``)."""


class ConfigError(Exception):
    """The config cannot be used. ``errors`` holds one ``file:line: path: message`` per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def load(
    path: Path | str,
    environ: Mapping[str, str] | None = None,
    *,
    checks: Sequence[Check] = (),
    secrets_of: Path_ | None = None,
) -> Config:
    """Read, parse and validate the file at ``path``, then run ``checks``; raise
    :class:`ConfigError`. With ``secrets_of``, see :func:`parse`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ConfigError([f"{path}:{line}: not UTF-8 text"]) from None
    environ = os.environ if environ is None else environ
    return parse(text, str(path), environ, path.parent, checks=checks, secrets_of=secrets_of)


def parse(
    text: str,
    filename: str,
    environ: Mapping[str, str],
    base_dir: Path,
    *,
    checks: Sequence[Check] = (),
    secrets_of: Path_ | None = None,
) -> Config:
    """Validate config ``text``, then run ``checks`` on it once its names resolve; ``filename``
    only labels messages. Raise :class:`ConfigError`.

    ``secrets_of`` (a key path such as ``("sources", "prod")``) resolves only the secrets under
    it: any other whose variable is not set or whose file is missing is left
    :class:`~config.secrets.Unresolved`, and the config is for that part's use alone."""
    try:
        node, data = _read_yaml(text)
        lines: dict[Path_, int] = {}
        problems = list(_index(node, (), lines, set())) if node is not None else []
    except yaml.MarkedYAMLError as exc:
        where = yamlerrors.describe(exc)
        message = f"{filename}:{where.line}:{where.column}: invalid YAML: {where.message}"
        raise ConfigError([message]) from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        message = f"a control character (U+{exc.character:04X}): YAML text cannot hold one"
        raise ConfigError([f"{filename}:{line}:{column}: invalid YAML: {message}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{filename}: invalid YAML: {exc}"]) from None
    except RecursionError:
        raise ConfigError([f"{filename}: invalid YAML: nested too deeply"]) from None
    if problems:
        raise ConfigError([f"{filename}:{line}: {msg}" for line, msg in problems])
    if data is None:
        raise ConfigError([f"{filename}:1: the config is empty: it needs a sources: key"])
    if not isinstance(data, dict):
        raise ConfigError([f"{filename}:1: the config must be a mapping with a sources: key"])
    context = {"environ": environ, "base_dir": base_dir, "lenient": secrets_of is not None}
    try:
        config = Config.model_validate(data, context=context)
    except ValidationError as exc:
        errors = sorted(
            (_line(lines, err["loc"]), _format(err)) for err in exc.errors(include_input=False)
        )
        raise ConfigError([f"{filename}:{line}: {msg}" for line, msg in errors]) from None
    if secrets_of is not None:
        needed = [
            (loc, u.reason)
            for loc, u in _unresolved(config, ())
            if loc[: len(secrets_of)] == secrets_of
        ]
        _refuse(filename, lines, needed)
    _refuse(filename, lines, reference_errors(config))
    _refuse(filename, lines, [problem for check in checks for problem in check(config)])
    return config


def _unresolved(value: Any, path: Path_) -> Iterator[tuple[Path_, Unresolved]]:
    """Every secret left unresolved in ``value`` (a loaded config or a part of it), with its
    key path as the file writes it."""
    if isinstance(value, Unresolved):
        yield path, value
    elif isinstance(value, BaseModel):
        for name, field in type(value).model_fields.items():
            yield from _unresolved(getattr(value, name), (*path, field.alias or name))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _unresolved(item, (*path, str(key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _unresolved(item, (*path, i))


def _refuse(filename: str, lines: dict[Path_, int], problems: list[tuple[Path_, str]]) -> None:
    """Raise :class:`ConfigError` for ``problems``, if any, each at the line of its key path."""
    located = sorted((_line(lines, loc), f"{dotted(loc)}: {msg}") for loc, msg in problems)
    if located:
        raise ConfigError([f"{filename}:{line}: {msg}" for line, msg in located])


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, but a mapping key is the text written: ``on:`` and ``1:`` are the
    names ``"on"`` and ``"1"``, not ``True`` and ``1``, and a list or mapping is no key."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)
        mapping: dict[Any, Any] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be a name, not a list or mapping", key.start_mark
                )
            mapping[key.value] = self.construct_object(value, deep=deep)
        return mapping


def _read_yaml(text: str) -> tuple[yaml.Node | None, Any]:
    """The document's node tree (for line numbers) and its data, read in one pass."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        return node, loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()


def _index(
    node: yaml.Node, path: Path_, lines: dict[Path_, int], seen: set[int]
) -> Iterator[tuple[int, str]]:
    """Record the line of every key path; yield (line, message) for duplicate keys.

    A node reached again through an alias is not walked again: aliases of aliases would
    otherwise cost exponential time (a "billion laughs" file), and a recursive one forever.
    """
    lines.setdefault(path, node.start_mark.line + 1)
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        names: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            if name in names:
                yield key.start_mark.line + 1, f"{dotted((*path, name))}: duplicate key"
            names.add(name)
            lines[(*path, name)] = key.start_mark.line + 1
            yield from _index(value, (*path, name), lines, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _index(item, (*path, i), lines, seen)


def _line(lines: dict[Path_, int], loc: Path_) -> int:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def dotted(loc: Path_) -> str:
    """``('sources', 'prod', 'verify', 0)`` → ``sources.prod.verify[0]``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _format(err: ErrorDetails) -> str:
    loc = tuple(err["loc"])
    kind = err["type"]
    if loc and loc[-1] == "[key]":
        return f"{dotted(loc[:-1])}: invalid name (letters, digits, _ . - only)"
    if kind == "extra_forbidden":
        known = _known_keys(loc[:-1])
        hint = f" (known: {', '.join(known)})" if known else ""
        return f"{dotted(loc)}: unknown key{hint}"
    if kind == "missing":
        return f"{dotted(loc)}: required"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str((err.get("ctx") or {}).get("expected", "")))
        return f"{dotted(loc)}: must be one of {', '.join(choices)}"
    if kind in _MESSAGES:
        return f"{dotted(loc)}: {_MESSAGES[kind]}"
    if kind in ("too_short", "string_too_short") and (err.get("ctx") or {}).get("min_length") == 1:
        return f"{dotted(loc)}: must not be empty"
    message = err["msg"].removeprefix("Value error, ")
    return f"{dotted(loc)}: {message[0].lower()}{message[1:]}" if loc else message


_MESSAGES = {
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "dict_type": "must be a mapping",
    "list_type": "must be a list",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
}
"""Pydantic's messages that would name our classes or its own types, said plainly."""


def _known_keys(loc: Path_) -> list[str]:
    """The keys the model at ``loc`` accepts, found by walking the schema's annotations."""
    model: Any = Config
    for part in loc:
        if isinstance(model, type) and issubclass(model, BaseModel):
            fields = {f.alias or name: f for name, f in model.model_fields.items()}
            field = fields.get(str(part))
            model = _unwrap_optional(field.annotation) if field else None
        else:  # a list or dict: step into its item type
            args = typing.get_args(model)
            model = _unwrap_optional(args[-1]) if args else None
    if isinstance(model, type) and issubclass(model, BaseModel):
        return sorted(f.alias or name for name, f in model.model_fields.items())
    return []


def _unwrap_optional(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    is_union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    return args[0] if is_union and len(args) == 1 else annotation
