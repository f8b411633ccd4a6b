"""Static analysis of prompt templates (Jinja), before any sandbox sees them.

A template is parsed (never rendered) and its syntax tree is walked to find:

* syntax errors, with the template line they are on,
* the variables it reads: top-level names and ``user.<attribute>`` chains,
* filters and tests that do not exist,
* reaches for private or internal attributes (``__class__``, ``_x``), the
  ``attr`` filter and ``format`` methods: the building blocks of template
  injection. They are refused outright, even though the runtime sandbox would
  also stop them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # jinja2 is imported when a template is first parsed: specs without prompts never need it
    from jinja2 import nodes
    from jinja2.sandbox import SandboxedEnvironment

#: Names a template may use besides the ones Jinja provides.
CONTEXT = ("user", "variant", "experiment", "segment")
#: Fields of the non-attribute context objects.
CONTEXT_FIELDS = {
    "variant": ("id", "description"),
    "experiment": ("id", "name", "owner", "hypothesis", "description"),
}
#: Jinja globals a template may use.
SAFE_GLOBALS = ("range", "dict", "namespace", "loop")
UNSAFE_FILTERS = {"attr"}
UNSAFE_METHODS = {"format", "format_map", "mro"}


@dataclass(frozen=True, slots=True)
class Use:
    """Something a template does that needs checking, on a 1-based template line."""

    kind: str  # "name" | "field" | "whole" | "filter" | "test" | "private" | "unsafe"
    name: str  # the variable, "user.first_name", filter name, attribute...
    line: int


@dataclass(frozen=True, slots=True)
class Analysis:
    """What a template uses, or its syntax error."""

    uses: tuple[Use, ...] = ()
    syntax_error: str | None = None
    error_line: int = 1


@lru_cache(maxsize=1)
def environment() -> SandboxedEnvironment:
    """The Jinja environment expc renders and parses templates with."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


def analyse(source: str) -> Analysis:
    """Parse a template and list every name, field, filter and risky access it uses."""
    from jinja2 import TemplateSyntaxError, nodes

    env = environment()
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        return Analysis(syntax_error=exc.message or "invalid template", error_line=exc.lineno or 1)
    uses: list[Use] = []
    assigned: set[str] = set()
    for node in tree.find_all((nodes.Name,)):
        if node.ctx in ("store", "param"):
            assigned.add(node.name)
    # `user.x` reads one attribute; any other use of `user` (a loop, a filter, `set u = user`) reads them all
    dotted = {id(n.node) for n in tree.find_all((nodes.Getattr, nodes.Getitem))
              if isinstance(n, nodes.Getattr) or _const(n.arg) is not None}
    for node in tree.find_all(nodes.Node):
        line = getattr(node, "lineno", 1) or 1
        if isinstance(node, nodes.Name) and node.ctx == "load":
            if node.name.startswith("_"):
                uses.append(Use("private", node.name, line))
            elif node.name not in assigned:
                uses.append(Use("name", node.name, line))
                if node.name in ("user", "segment") and id(node) not in dotted:
                    uses.append(Use("whole", node.name, line))
        elif isinstance(node, (nodes.Getattr, nodes.Getitem)):
            attr = node.attr if isinstance(node, nodes.Getattr) else _const(node.arg)
            if attr is None:
                continue
            if attr.startswith("_"):
                uses.append(Use("private", attr, line))
            elif attr in UNSAFE_METHODS:
                uses.append(Use("unsafe", attr, line))
            elif isinstance(node.node, nodes.Name) and node.node.name in CONTEXT and node.node.name not in assigned:
                uses.append(Use("field", f"{node.node.name}.{attr}", line))
        elif isinstance(node, nodes.Filter):
            uses.append(Use("unsafe" if node.name in UNSAFE_FILTERS else "filter", node.name, line))
        elif isinstance(node, nodes.Test):
            uses.append(Use("test", node.name, line))
    return Analysis(uses=tuple(uses))


def _const(node: nodes.Node) -> str | None:
    from jinja2 import nodes

    return node.value if isinstance(node, nodes.Const) and isinstance(node.value, str) else None
