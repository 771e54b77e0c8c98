"""The one Jinja2 environment notifications are rendered with: sandboxed (a template cannot
reach Python internals), strict (an undefined name is an error, not an empty string), compiled
when the config loads so a broken template fails the load, not the first delivery."""

from functools import cache

from jinja2 import StrictUndefined, Template, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment


@cache
def environment(autoescape: bool = False) -> ImmutableSandboxedEnvironment:
    """Text templates (``autoescape=False``) or HTML templates (``True``)."""
    return ImmutableSandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=autoescape,
        keep_trailing_newline=True,
    )


def compile_template(source: str, *, html: bool = False) -> Template:
    """Compile ``source``; raise ``ValueError`` naming the line and problem."""
    try:
        return environment(html).from_string(source)
    except TemplateSyntaxError as exc:
        problem = exc.message or "syntax error"
        raise ValueError(f"template does not compile: line {exc.lineno}: {problem}") from None
    except RecursionError:
        raise ValueError("template does not compile: nested too deeply") from None
