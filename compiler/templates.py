"""Static analysis of prompt templates (Jinja), before any sandbox sees them.

A template is parsed (never rendered) and its syntax tree is walked to find:

* syntax errors, with the template line they are on,
* the variables it reads: top-level names and ``user.<attribute>`` chains. A
  name the template assigns itself (``{% set %}``, a loop variable, a macro
  argument) counts as its own only where it is bound on every path: a
  ``{% set %}`` inside one branch of an ``if`` does not bind after the ``if``
  unless every branch sets it, and what a loop, macro or block binds stays
  inside it, as in Jinja. Any other name must be part of the context or one of
  :data:`SAFE_GLOBALS`,
* filters and tests that do not exist,
* reaches for private or internal attributes (``__class__``, ``_x``), the
  ``attr`` filter and ``format`` methods: the building blocks of template
  injection. They are refused outright, even though the runtime sandbox would
  also stop them,
* constructs that can only exhaust a machine, where their size is written in
  the template: ``range`` over more than :data:`MAX_RANGE` items, ``**`` with a
  constant exponent above :data:`MAX_EXPONENT` (or a result above
  :data:`MAX_INT_BITS` bits), loops nested deeper than :data:`MAX_LOOP_DEPTH`,
  a source longer than :data:`MAX_TEMPLATE_CHARS`.

The render environment's globals are exactly :data:`SAFE_GLOBALS`, built by
:func:`template_globals` (the runtime sandbox installs them; a test keeps the
two equal).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # jinja2 is imported when a template is first parsed: specs without prompts never need it
    from jinja2 import nodes
    from jinja2.sandbox import SandboxedEnvironment

#: Names a template may use besides the ones it binds itself.
CONTEXT = ("user", "variant", "experiment", "segment")
#: Fields of the non-attribute context objects.
CONTEXT_FIELDS = {
    "variant": ("id", "description"),
    "experiment": ("id", "name", "owner", "hypothesis", "description"),
}
#: The globals of the render environment, exactly (built by :func:`template_globals`). Jinja's others
#: (``lipsum``, ``cycler``, ``joiner``) are removed.
SAFE_GLOBALS = ("dict", "namespace", "range")
UNSAFE_FILTERS = {"attr"}
UNSAFE_METHODS = {"format", "format_map", "mro"}
#: The statements that load another template (none exists: a template is self-contained), by node type.
_LOADS = {"Include": "include", "Import": "import", "FromImport": "from", "Extends": "extends"}

#: Most items a ``range`` may have (statically when its arguments are written out, and at render time).
MAX_RANGE = 10_000
#: Largest constant exponent ``**`` may have.
MAX_EXPONENT = 256
#: Largest integer (in bits) a template may compute.
MAX_INT_BITS = 4096
#: Deepest nesting of ``for`` loops.
MAX_LOOP_DEPTH = 3
#: Longest template source (characters).
MAX_TEMPLATE_CHARS = 65_536
#: What a finding of kind ``limit`` can say to a person (the hint of its diagnostic).
LIMITS_HINT = (f"a prompt template loops over at most {MAX_RANGE:,} items, nests at most {MAX_LOOP_DEPTH} loops, "
               f"computes no number beyond {MAX_INT_BITS} bits and is at most {MAX_TEMPLATE_CHARS:,} characters long")


@dataclass(frozen=True, slots=True)
class Use:
    """Something a template does that needs checking, on a 1-based template line."""

    kind: str  # "name" | "field" | "whole" | "filter" | "test" | "private" | "unsafe" | "limit"
    name: str  # the variable, "user.first_name", filter name, attribute, or what a limit is about ("range")...
    line: int
    detail: str = ""  # for "limit": what is wrong, for a person


@dataclass(frozen=True, slots=True)
class Analysis:
    """What a template uses, or its syntax error."""

    uses: tuple[Use, ...] = ()
    syntax_error: str | None = None
    error_line: int = 1


class TemplateLimitError(Exception):
    """A template went past one of its limits while rendering (raised by the bounded globals and the sandbox)."""


def bounded_range(*args: Any) -> range:
    """Jinja's ``range``, refusing more than :data:`MAX_RANGE` items."""
    numbers = range(*args)
    size = _length(numbers)
    if size is None or size > MAX_RANGE:
        shown = f"{size:,}" if size is not None else "more than 2**63"
        raise TemplateLimitError(f"range() of {shown} items: a template may loop over at most {MAX_RANGE:,}")
    return numbers


def _length(numbers: range) -> int | None:
    """``len(numbers)``, or None when it does not fit a machine integer."""
    try:
        return len(numbers)
    except OverflowError:
        return None


def _dict(*args: Any, **kwargs: Any) -> dict[Any, Any]:
    """Jinja's ``dict`` global (a function, so that the type's class methods stay out of reach)."""
    return dict(*args, **kwargs)


def template_globals() -> dict[str, Any]:
    """The render environment's globals: one entry per name of :data:`SAFE_GLOBALS`."""
    from jinja2.utils import Namespace

    made: dict[str, Any] = {"dict": _dict, "namespace": Namespace, "range": bounded_range}
    assert tuple(sorted(made)) == SAFE_GLOBALS
    return made


def configure(env: SandboxedEnvironment) -> SandboxedEnvironment:
    """Give an environment exactly the template globals and filters expc allows (parsing and rendering alike)."""
    env.globals.clear()
    env.globals.update(template_globals())
    for name in UNSAFE_FILTERS:
        env.filters.pop(name, None)
    return env


@lru_cache(maxsize=1)
def environment() -> SandboxedEnvironment:
    """The Jinja environment expc parses templates with (its filters, tests and globals are the allowed ones)."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return configure(ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False,
                                                   keep_trailing_newline=True))


def analyse(source: str) -> Analysis:
    """Parse a template and list every name, field, filter, risky access and over-limit construct it uses."""
    from jinja2 import TemplateSyntaxError

    if len(source) > MAX_TEMPLATE_CHARS:
        return Analysis(uses=(Use("limit", "size", 1, f"the template is {len(source):,} characters long, more "
                                  f"than {MAX_TEMPLATE_CHARS:,}"),))
    env = environment()
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        return Analysis(syntax_error=exc.message or "invalid template", error_line=exc.lineno or 1)
    except RecursionError:
        return Analysis(syntax_error="the template is nested too deeply to parse")
    try:
        return Analysis(uses=_uses(tree))
    except RecursionError:
        return Analysis(syntax_error="the template is nested too deeply to check")


def _uses(tree: nodes.Template) -> tuple[Use, ...]:
    """Every use of a parsed template, in the order of the tree."""
    from jinja2 import nodes

    uses: list[Use] = []
    bindings = _Bindings(uses)
    bindings.block(tree.body, frozenset())
    local = bindings.local
    # `user.x` reads one attribute; any other use of `user` (a loop, a filter, `set u = user`) reads them all
    dotted = {id(n.node) for n in tree.find_all((nodes.Getattr, nodes.Getitem))  # type: ignore[attr-defined]
              if isinstance(n, nodes.Getattr) or _const(n.arg) is not None}  # type: ignore[attr-defined]
    for node in tree.find_all(nodes.Node):
        line = getattr(node, "lineno", 1) or 1
        if isinstance(node, nodes.Name) and node.ctx == "load":
            if node.name.startswith("_"):
                uses.append(Use("private", node.name, line))
            elif id(node) not in local:
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
            elif isinstance(node.node, nodes.Name) and node.node.name in CONTEXT and id(node.node) not in local:
                uses.append(Use("field", f"{node.node.name}.{attr}", line))
        elif isinstance(node, nodes.Filter):
            uses.append(Use("unsafe" if node.name in UNSAFE_FILTERS else "filter", node.name, line))
        elif isinstance(node, nodes.Test):
            uses.append(Use("test", node.name, line))
        elif isinstance(node, (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
            # another template is a file the render has no loader for: refused here rather than failing each render
            uses.append(Use("unsafe", f"{{% {_LOADS[type(node).__name__]} %}}", line))
        elif isinstance(node, nodes.Pow):
            uses.extend(_pow_limit(node, line))
        elif isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name == "range" \
                and id(node.node) not in local:
            uses.extend(_range_limit(node, line))
    uses.extend(_depth_limit(tree))
    return tuple(uses)


def _const(node: nodes.Node) -> str | None:
    from jinja2 import nodes

    return node.value if isinstance(node, nodes.Const) and isinstance(node.value, str) else None


# ------------------------------------------------------------------ what {% set %} really binds


class _Bindings:
    """Walks the statements in order with the names bound on every path so far (Jinja's scoping).

    ``local`` collects the ids of the ``Name`` loads that read such a name; every
    other load is a read of the context or a global. A namespace assignment
    (``{% set ns.x = ... %}``) to a name not bound there is reported as a use.
    """

    def __init__(self, uses: list[Use]) -> None:
        self.local: set[int] = set()
        self.uses = uses

    def block(self, body: list[nodes.Node], bound: frozenset[str]) -> frozenset[str]:
        """Walk statements in order; the names bound after them."""
        for stmt in body:
            bound = self.statement(stmt, bound)
        return bound

    def reads(self, expr: nodes.Node | None, bound: frozenset[str]) -> None:
        """Mark the loads in ``expr`` of names bound at this point."""
        from jinja2 import nodes

        if expr is None:
            return
        for name in [expr, *expr.find_all(nodes.Name)]:
            if isinstance(name, nodes.Name) and name.ctx == "load" and name.name in bound:
                self.local.add(id(name))

    def statement(self, stmt: nodes.Node, bound: frozenset[str]) -> frozenset[str]:
        """Walk one statement; the names bound after it."""
        from jinja2 import nodes

        if isinstance(stmt, nodes.Output):
            for child in stmt.nodes:
                self.reads(child, bound)
        elif isinstance(stmt, nodes.ExprStmt):
            self.reads(stmt.node, bound)
        elif isinstance(stmt, nodes.Assign):
            self.reads(stmt.node, bound)
            return bound | self.target(stmt.target, bound)
        elif isinstance(stmt, nodes.AssignBlock):
            self.block(stmt.body, bound)  # what the block's body sets stays in it
            self.reads(stmt.filter, bound)
            return bound | self.target(stmt.target, bound)
        elif isinstance(stmt, nodes.If):
            self.reads(stmt.test, bound)
            after = self.block(stmt.body, bound)
            for branch in stmt.elif_:
                self.reads(branch.test, bound)
                after &= self.block(branch.body, bound)
            after &= self.block(stmt.else_, bound) if stmt.else_ else bound
            return after
        elif isinstance(stmt, nodes.For):
            self.reads(stmt.iter, bound)
            targets = frozenset(n.name for n in _stores(stmt.target))
            self.reads(stmt.test, bound | targets)
            self.block(stmt.body, bound | targets | {"loop"})
            self.block(stmt.else_, bound)
        elif isinstance(stmt, (nodes.Macro, nodes.CallBlock)):
            for default in stmt.defaults:
                self.reads(default, bound)
            if isinstance(stmt, nodes.CallBlock):
                self.reads(stmt.call, bound)
            params = frozenset(a.name for a in stmt.args) | {"caller", "varargs", "kwargs"}
            if isinstance(stmt, nodes.Macro):
                params |= {stmt.name}  # a macro may call itself
            self.block(stmt.body, bound | params)
            if isinstance(stmt, nodes.Macro):
                return bound | {stmt.name}
        elif isinstance(stmt, nodes.FilterBlock):
            self.block(stmt.body, bound)
            self.reads(stmt.filter, bound)
        elif isinstance(stmt, nodes.With):
            for value in stmt.values:
                self.reads(value, bound)
            self.block(stmt.body, bound | frozenset(n.name for t in stmt.targets for n in _stores(t)))
        elif isinstance(stmt, nodes.Block):
            self.block(stmt.body, bound if stmt.scoped else frozenset())
        elif isinstance(stmt, (nodes.Scope, nodes.ScopedEvalContextModifier)):
            self.block(stmt.body, bound)
        elif isinstance(stmt, nodes.Import):
            return bound | {stmt.target}
        elif isinstance(stmt, nodes.FromImport):
            return bound | {n if isinstance(n, str) else n[1] for n in stmt.names}
        # anything else binds nothing and reads nothing the template bound (conservative)
        return bound

    def target(self, target: nodes.Node, bound: frozenset[str]) -> frozenset[str]:
        """The names an assignment binds; a namespace it writes to must be bound already."""
        from jinja2 import nodes

        for ref in [target, *target.find_all(nodes.NSRef)]:
            if isinstance(ref, nodes.NSRef) and ref.name not in bound:
                self.uses.append(Use("name", ref.name, ref.lineno or 1))
        return frozenset(n.name for n in _stores(target))


def _stores(target: nodes.Node) -> list[nodes.Name]:
    from jinja2 import nodes

    return [n for n in [target, *target.find_all(nodes.Name)]
            if isinstance(n, nodes.Name) and n.ctx in ("store", "param")]


# ------------------------------------------------------------------ constructs that can only be abuse

_HUGE = object()  # a constant too large to compute


def _value(node: nodes.Node) -> Any:
    """The number a constant expression evaluates to, :data:`_HUGE`, or None when it is not a constant number."""
    from jinja2 import nodes

    if isinstance(node, nodes.Const):
        value = node.value
        return value if isinstance(value, (int, float)) else None
    if isinstance(node, (nodes.Neg, nodes.Pos)):
        value = _value(node.node)
        return value if value is None or value is _HUGE else (-value if isinstance(node, nodes.Neg) else value)
    operations: dict[type, Callable[[Any, Any], Any]] = {
        nodes.Add: lambda a, b: a + b, nodes.Sub: lambda a, b: a - b, nodes.Mul: _mul,
        nodes.FloorDiv: lambda a, b: a // b, nodes.Mod: lambda a, b: a % b, nodes.Div: lambda a, b: a / b,
        nodes.Pow: _pow,
    }
    operation = operations.get(type(node))
    if operation is None:
        return None
    left, right = _value(node.left), _value(node.right)  # type: ignore[attr-defined]
    if left is None or right is None:
        return None
    if left is _HUGE or right is _HUGE:
        return _HUGE
    try:
        value = operation(left, right)
    except (ArithmeticError, ValueError):
        return None
    return _HUGE if isinstance(value, int) and value.bit_length() > MAX_INT_BITS else value


def _mul(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int) and a.bit_length() + b.bit_length() > MAX_INT_BITS + 1:
        return _HUGE
    return a * b


def _pow(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int) and abs(a) > 1 and b > 0 \
            and b * (abs(a).bit_length() - 1) > MAX_INT_BITS:
        return _HUGE
    if isinstance(b, (int, float)) and abs(b) > MAX_EXPONENT:
        return _HUGE if isinstance(a, int) and abs(a) > 1 else None
    return a ** b


def _pow_limit(node: nodes.Pow, line: int) -> list[Use]:
    exponent = _value(node.right)
    if exponent is _HUGE or (isinstance(exponent, (int, float)) and abs(exponent) > MAX_EXPONENT):
        shown = "a huge number" if exponent is _HUGE else f"{exponent:,}" if isinstance(exponent, int) \
            else f"{exponent:g}"
        return [Use("limit", "**", line, f"`**` with exponent {shown} (at most {MAX_EXPONENT})")]
    if _value(node) is _HUGE:
        return [Use("limit", "**", line, f"`**` makes a number of more than {MAX_INT_BITS} bits")]
    return []


def _range_limit(node: nodes.Call, line: int) -> list[Use]:
    values = [_value(a) for a in node.args]
    if node.kwargs or node.dyn_args or node.dyn_kwargs or not values or any(v is None for v in values):
        return []
    if any(v is _HUGE for v in values):
        size = None
    else:
        if not all(isinstance(v, int) for v in values) or (len(values) == 3 and values[2] == 0) or len(values) > 3:
            return []
        size = _length(range(*values))
    if size is not None and size <= MAX_RANGE:
        return []
    shown = f"{size:,} items" if size is not None else "a huge number of items"
    return [Use("limit", "range", line, f"`range` over {shown} (at most {MAX_RANGE:,})")]


def _depth_limit(tree: nodes.Node) -> list[Use]:
    """The first loop nested deeper than :data:`MAX_LOOP_DEPTH`, as a use."""
    from jinja2 import nodes

    def walk(node: nodes.Node, depth: int) -> Use | None:
        for child in node.iter_child_nodes():
            inner = depth + isinstance(child, nodes.For)
            if inner > MAX_LOOP_DEPTH:
                return Use("limit", "for", child.lineno or 1,
                           f"`for` loops nested {inner} deep (at most {MAX_LOOP_DEPTH})")
            found = walk(child, inner)
            if found is not None:
                return found
        return None

    found = walk(tree, 0)
    return [found] if found is not None else []
