"""Prompt templates to messages, in a sandbox, within a time and a size budget.

Templates are written by spec authors, but a spec may come from an untrusted
pull request, so templates are treated as hostile:

* every template is first analysed statically (:mod:`expc.compiler.templates`)
  and refused when it reaches for private attributes (``__class__``, ``_x``),
  the ``attr`` filter or ``format`` methods, names it has not bound on every
  path and that are not part of the context, or constructs that can only
  exhaust the machine (``range(10**9)``, ``9 ** 99999``, loops nested deeper
  than three);
* it then renders in :class:`_Sandbox`, Jinja's immutable sandbox made
  stricter: the globals are exactly
  :data:`~expc.compiler.templates.SAFE_GLOBALS`; only a list of harmless
  methods of text, lists and mappings may be called; ``user``, ``segment``,
  ``variant`` and ``experiment`` are :class:`Record` s (read-only, and
  ``user.items`` is the attribute ``items``, never a method);
* each render has a budget (:class:`RenderLimits`): a deadline checked at
  every loop iteration, call, attribute lookup, operator and piece of output,
  so that pure-Python work inside Jinja is interrupted; the prompt may not be
  longer than ``chars`` characters (checked while the text streams out); and
  no value or text the template builds along the way (in macros, ``{% set %}``
  blocks, filters, ``~``, ``*``, list literals) may exceed
  :data:`WORK_FACTOR` times that. Arithmetic that would build a huge number,
  text or list is refused before it is computed.

A template that goes past its budget raises :class:`RenderLimitExceeded`;
generation fails that item under the prompt's ``on_fail`` policy. Any other
problem raises :class:`RenderError`.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from types import BuiltinFunctionType, MethodWrapperType, ModuleType
from typing import Any

from jinja2 import StrictUndefined, TemplateError, nodes, pass_context
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace
from jinja2.visitor import NodeTransformer

from expc.compiler.templates import (
    CONTEXT,
    MAX_INT_BITS,
    SAFE_GLOBALS,
    TemplateLimitError,
    analyse,
    configure,
)

#: The longest prompt one item's template may render (characters), unless the generate options say otherwise.
MAX_PROMPT_CHARS = 16_384
#: The longest one item's template may take to render (seconds), unless the generate options say otherwise.
RENDER_SECONDS = 1.0
#: Values and text built along the way may be at most this many times the prompt's budget.
WORK_FACTOR = 8
_REFUSED_NAMES = {"format", "format_map", "mro", "func_globals", "gi_frame", "cr_frame", "f_globals"}
_CHECK_CLOCK_EVERY = 16


class RenderError(Exception):
    """A template could not be rendered: the message says which and why (for a person)."""


class RenderLimitExceeded(RenderError):
    """A template went past its time or size budget; ``slow`` when it was the time."""

    def __init__(self, message: str, slow: bool = False) -> None:
        super().__init__(message)
        self.slow = slow


@dataclass(frozen=True)
class RenderLimits:
    """One item's rendering budget: seconds of rendering and characters of prompt."""

    seconds: float = RENDER_SECONDS
    chars: int = MAX_PROMPT_CHARS

    @property
    def work_chars(self) -> int:
        """The largest value or amount of text the template may build along the way."""
        return self.chars * WORK_FACTOR


class _TooSlow(TemplateLimitError):
    """The deadline passed."""


class _Budget:
    """One render's deadline and counters (the sandbox reads the current one from :data:`_current`)."""

    __slots__ = ("limits", "deadline", "steps", "built")

    def __init__(self, limits: RenderLimits) -> None:
        self.limits = limits
        self.deadline = time.perf_counter() + limits.seconds
        self.steps = 0
        self.built = 0

    def tick(self) -> None:
        """Count one step of work; past the deadline, stop the render."""
        self.steps += 1
        if not self.steps % _CHECK_CLOCK_EVERY:
            self.check_clock()

    def check_clock(self) -> None:
        """Stop the render when the deadline has passed."""
        if time.perf_counter() > self.deadline:
            raise _TooSlow(f"rendering took more than {self.limits.seconds:g} s (a loop or call that does not end "
                           "soon enough)")


_current: ContextVar[_Budget | None] = ContextVar("expc_render_budget", default=None)
_DEFAULT = RenderLimits()


def _tick(clock: bool = False) -> None:
    """A step of the current render's budget (``clock``: read the clock now, before a step that may be long)."""
    budget = _current.get()
    if budget is not None:
        budget.tick()
        if clock:
            budget.check_clock()


def _work_chars() -> int:
    budget = _current.get()
    return (budget.limits if budget is not None else _DEFAULT).work_chars


def _too_big(what: str, size: float | None = None) -> TemplateLimitError:
    shown = f" ({size:,.0f})" if size is not None and math.isfinite(size) else ""
    return TemplateLimitError(f"{what}{shown} would be larger than the {_work_chars():,} characters a template may "
                              "build")


# ------------------------------------------------------------------ read-only context values


class Record(dict[str, Any]):
    """A read-only mapping a template reads as ``user``, ``segment``, ``variant`` or ``experiment``.

    A template's attribute lookup (``user.items``) reads the key ``items``,
    never a method; nested lists are :class:`FrozenList` s. Python code sees a
    plain mapping (JSON, ``dictsort``, iteration), but cannot change it.
    """

    __slots__ = ("label",)

    def __init__(self, label: str, values: dict[str, Any] | None = None) -> None:
        super().__init__((k, freeze(v)) for k, v in (values or {}).items())
        self.label = label

    def _read_only(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"`{self.label}` is read-only")

    __setitem__ = __delitem__ = __ior__ = update = pop = popitem = clear = setdefault = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return (Record, (self.label, dict(self)))


class FrozenList(list[Any]):
    """A list value of a :class:`Record`: reads like a list, cannot be changed."""

    __slots__ = ()

    def _read_only(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("a template's context is read-only")

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _read_only
    append = extend = insert = remove = pop = clear = sort = reverse = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenList, (list(self),))


def freeze(value: Any) -> Any:
    """A value as a template receives it: lists (and tuples) become :class:`FrozenList` s, mappings Records."""
    if isinstance(value, dict):
        return value if isinstance(value, Record) else Record("value", value)
    if isinstance(value, (list, tuple)):
        return FrozenList(freeze(v) for v in value)
    return value


# ------------------------------------------------------------------ sizes


def _text_size(value: Any, limit: int) -> int:
    """About how many characters ``value`` is as text, counting shared references each time (stops past ``limit``)."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, (list, tuple, set, frozenset, dict)):
            total += 2 + 2 * len(item)
            if total > limit:
                return total
            stack.extend(item.keys() if isinstance(item, dict) else item)
            if isinstance(item, dict):
                stack.extend(item.values())
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() * 3 // 10 + 2
        elif isinstance(item, Namespace):
            stack.append(object.__getattribute__(item, "_Namespace__attrs"))
            total += 12
        else:
            total += 24
        if total > limit:
            return total
    return total


def _check_value(value: Any) -> Any:
    """``value`` itself, once its text is known to fit the budget (anything the template builds passes here)."""
    if isinstance(value, (str, list, tuple, dict, set, frozenset, Namespace)):
        limit = _work_chars()
        size = len(value) if isinstance(value, str) else _text_size(value, limit)
        if size > limit:
            raise _too_big("a value the template builds")
    elif isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise TemplateLimitError(f"the template computes a number of more than {MAX_INT_BITS} bits")
    return value


_PERCENT = re.compile(r"%(?:\([^)]*\))?[-+ #0]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_percent_format(text: str) -> None:
    """Refuse ``%``-format widths and precisions beyond the budget (``'%999999999d' % 1``)."""
    limit = _work_chars()
    for width, precision in _PERCENT.findall(text):
        for number in (width, precision):
            if number == "*":
                raise TemplateLimitError("a `*` width in a %-format is not allowed in a template")
            if number and (len(number) > 9 or int(number) > limit):
                raise _too_big("a %-format width", int(number) if len(number) <= 18 else None)


def _check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse an operation whose result would be too big, before computing it."""
    def sized(x: Any) -> bool:
        return isinstance(x, (str, list, tuple))

    def integer(x: Any) -> bool:
        return isinstance(x, int)

    limit = _work_chars()
    if operator == "**":
        if integer(left) and integer(right) and right > 0 and abs(left) > 1 \
                and right * (abs(left).bit_length() - 1) > MAX_INT_BITS:
            raise TemplateLimitError(f"`**` would compute a number of more than {MAX_INT_BITS} bits")
    elif operator == "*":
        if integer(left) and integer(right):
            if left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
                raise TemplateLimitError(f"`*` would compute a number of more than {MAX_INT_BITS} bits")
        elif (sized(left) and integer(right)) or (integer(left) and sized(right)):
            sequence, times = (left, right) if sized(left) else (right, left)
            if times > 0 and _text_size(sequence, limit) * times > limit:
                raise _too_big("`*`", _text_size(sequence, limit) * float(times))
    elif operator == "+":
        if sized(left) and sized(right) and _text_size(left, limit) + _text_size(right, limit) > limit:
            raise _too_big("`+`")
    elif operator == "%" and isinstance(left, str):
        _check_percent_format(left)


# ------------------------------------------------------------------ methods and filters

#: Methods a template may call, by the kind of value they belong to.
_METHODS: dict[type | tuple[type, ...], frozenset[str]] = {
    str: frozenset({
        "capitalize", "casefold", "center", "count", "endswith", "find", "index", "isalnum", "isalpha", "isascii",
        "isdecimal", "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper", "join", "ljust", "lower",
        "lstrip", "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust", "rpartition",
        "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title", "upper", "zfill"}),
    (list, tuple, range): frozenset({"count", "index"}),
    dict: frozenset({"get", "items", "keys", "values"}),
    (int, float): frozenset({"bit_length", "is_integer", "conjugate"}),
}


def _method_kind(kind: type) -> frozenset[str] | None:
    for kinds, names in _METHODS.items():
        if issubclass(kind, kinds):
            return names
    return None


def _check_call(function: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Refuse methods templates have no use for and calls that would build too much; the arguments to use."""
    owner = getattr(function, "__self__", None)
    name = getattr(function, "__name__", "")
    if owner is None or isinstance(owner, ModuleType):
        if isinstance(function, (BuiltinFunctionType, MethodWrapperType)):  # Python's own, not a template's
            raise SecurityError(f"`{name}` cannot be called in a template")
        return args  # a macro, a global, a loop's `loop`: Jinja's and expc's own callables
    allowed = _method_kind(owner if isinstance(owner, type) else type(owner))
    if allowed is None:
        return args
    if name not in allowed or isinstance(owner, type):
        raise SecurityError(f"the method `{name}` of {_type_name(owner)} values cannot be called in a template "
                            "(use a filter)")
    if isinstance(owner, str):
        limit = _work_chars()
        if name in ("center", "ljust", "rjust", "zfill") and args and isinstance(args[0], int) and args[0] > limit:
            raise _too_big(f"`{name}`", args[0])
        if name == "replace" and len(args) >= 2:
            _check_replace(owner, args[0], args[1], args[2] if len(args) > 2 else -1)
        if name == "join" and args:
            items = list(args[0])
            _check_join(items, owner)
            args = (items, *args[1:])
    return args


def _type_name(owner: Any) -> str:
    kind: type = owner if isinstance(owner, type) else type(owner)
    names: dict[type, str] = {str: "text", dict: "mapping", list: "list"}
    return names.get(kind, kind.__name__)


def _check_replace(text: Any, old: Any, new: Any, count: Any) -> None:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)) or len(new) <= len(old):
        return
    found = len(text) + 1 if old == "" else text.count(old)
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    if len(text) + found * (len(new) - len(old)) > _work_chars():
        raise _too_big("`replace`", len(text) + found * (len(new) - len(old)))


def _check_join(items: list[Any], separator: Any) -> None:
    limit = _work_chars()
    size = _text_size(items, limit) + max(len(items) - 1, 0) * len(str(separator) if separator is not None else "")
    if size > limit:
        raise _too_big("`join`", size)


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str, default: Any = None) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _at_most(value: Any, limit: int, what: str) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > limit:
        raise _too_big(what, value)


def _guard_join(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    items = list(args[0]) if isinstance(args[0], Iterable) and not isinstance(args[0], str) else args[0]
    if isinstance(items, list) and _arg(args, kwargs, 2, "attribute") is None:
        _check_join(items, _arg(args, kwargs, 1, "d", ""))
    return (items, *args[1:]), kwargs


def _guard_count(index: int, name: str) -> Callable[[tuple[Any, ...], dict[str, Any]],
                                                  tuple[tuple[Any, ...], dict[str, Any]]]:
    """A guard keeping a filter's width or count (argument ``index`` or ``name``) within the budget."""
    def guard(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        _at_most(_arg(args, kwargs, index, name), _work_chars(), f"`{name}`")
        return args, kwargs

    return guard


def _guard_indent(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    width = _arg(args, kwargs, 1, "width", 4)
    step = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    lines = str(args[0]).count("\n") + 1
    if len(str(args[0])) + lines * max(step, 0) > _work_chars():
        raise _too_big("`indent`", len(str(args[0])) + lines * float(max(step, 0)))
    return args, kwargs


def _guard_replace(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if len(args) >= 3:
        count = _arg(args, kwargs, 3, "count", None)
        _check_replace(str(args[0]), str(args[1]), str(args[2]), -1 if count is None else count)
    return args, kwargs


def _guard_format(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if args and isinstance(args[0], str):
        _check_percent_format(args[0])
    return args, kwargs


def _guard_wordwrap(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    text = str(args[0])
    width = _arg(args, kwargs, 1, "width", 79)
    wrap = _arg(args, kwargs, 3, "wrapstring", None) or "\n"
    if isinstance(width, int) and width > 0 and \
            len(text) + (len(text) // width + 1) * len(str(wrap)) > _work_chars():
        raise _too_big("`wordwrap`")
    return args, kwargs


def _guard_urlize(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    extra = sum(len(str(_arg(args, kwargs, i, n) or "")) for i, n in ((3, "target"), (4, "rel")))
    if extra and (len(str(args[0])) // 2 + 1) * (extra + 40) > _work_chars():
        raise _too_big("`urlize`")
    return args, kwargs


def _guard_tojson(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    _at_most(_arg(args, kwargs, 1, "indent"), 8, "a `tojson` indent")
    return args, kwargs


def _guard_sum(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    start = _arg(args, kwargs, 2, "start", 0)
    if not isinstance(start, (int, float)):
        raise SecurityError("`sum` adds numbers in a template (its `start` must be a number)")
    return args, kwargs


_FILTER_GUARDS: dict[str, Callable[[tuple[Any, ...], dict[str, Any]], tuple[tuple[Any, ...], dict[str, Any]]]] = {
    "join": _guard_join, "center": _guard_count(1, "width"), "batch": _guard_count(1, "linecount"),
    "slice": _guard_count(1, "slices"),
    "indent": _guard_indent, "replace": _guard_replace, "format": _guard_format, "wordwrap": _guard_wordwrap,
    "urlize": _guard_urlize, "tojson": _guard_tojson, "sum": _guard_sum,
}


def _guarded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` with a step of the budget, its size guard, and a check of what it returns.

    The guarded filter takes the context, so Jinja never runs it while compiling
    (constant folding would run it outside any budget).
    """
    passes = getattr(getattr(function, "jinja_pass_arg", None), "name", None)
    guard = _FILTER_GUARDS.get(name)

    @pass_context
    def guarded(context: Context, *args: Any, **kwargs: Any) -> Any:
        _tick(clock=True)
        if guard is not None and args:
            args, kwargs = guard(args, kwargs)
        first: tuple[Any, ...] = ()
        if passes == "context":
            first = (context,)
        elif passes == "eval_context":
            first = (context.eval_ctx,)
        elif passes == "environment":
            first = (context.environment,)
        return _check_value(function(*first, *args, **kwargs))

    guarded.__name__ = getattr(function, "__name__", name)
    guarded.__doc__ = function.__doc__
    return guarded


# ------------------------------------------------------------------ the sandbox


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, minus private attributes, ``format`` methods and the ``attr`` filter, with budgets.

    Every binary operator is intercepted (so that Jinja never folds one while
    compiling, and a huge result is refused before it is computed).
    """

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if attr.startswith("_") or attr in _REFUSED_NAMES:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def getattr(self, obj: Any, attribute: str) -> Any:
        _tick()
        if isinstance(attribute, str) and (attribute.startswith("_") or attribute in _REFUSED_NAMES):
            return self.unsafe_undefined(obj, attribute)
        if isinstance(obj, Record):
            return self._field(obj, attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _tick()
        if isinstance(obj, Record):
            return self._field(obj, argument)
        if isinstance(argument, str) and (argument.startswith("_") or argument in _REFUSED_NAMES) \
                and not isinstance(obj, dict):
            return self.unsafe_undefined(obj, argument)
        return super().getitem(obj, argument)

    def _field(self, record: Record, name: Any) -> Any:
        if isinstance(name, str) and name in record:
            return dict.__getitem__(record, name)
        return self.undefined(hint=f"`{record.label}` has no attribute {name!r}", obj=record, name=name)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _tick(clock=True)
        if isinstance(__obj, LoopContext) and args:  # a recursive loop's next level
            args = (_iterate(args[0]), *args[1:])
        args = _check_call(__obj, args)
        return _check_value(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _tick()
        _check_binop(operator, left, right)
        return _check_value(self.binop_table[operator](left, right))


@pass_context
def _iterate_hook(context: Context, iterable: Any) -> Iterator[Any]:
    return _iterate(iterable)


def _iterate(iterable: Any) -> Iterator[Any]:
    """What a ``for`` loop iterates: ``iterable``, one step of the budget per item."""
    for item in iterable:
        _tick()
        yield item


@pass_context
def _emit_hook(context: Context, value: Any) -> Any:
    """A piece of output (top-level, or captured by a macro or block), counted against the budget."""
    budget = _current.get()
    if budget is not None:
        budget.tick()
        limit = budget.limits.work_chars
        budget.built += len(value) if isinstance(value, str) else _text_size(value, limit)
        if budget.built > limit:
            raise TemplateLimitError(f"the template builds more than {limit:,} characters of text (counting "
                                     "text made inside macros, blocks and filters)")
    return value


@pass_context
def _value_hook(context: Context, value: Any) -> Any:
    """A value the template builds (``~``, a list, tuple or dict literal), checked against the budget."""
    _tick()
    return _check_value(value)


#: The checks added to every template, as filters whose names no template can write (they hold a space). They
#: take the context, so that Jinja never runs them while compiling (outside any budget).
_HOOKS = {"expc iterate": _iterate_hook, "expc emit": _emit_hook, "expc value": _value_hook}


class _Instrument(NodeTransformer):
    """Adds the budget's checks (:data:`_HOOKS`) to a parsed template: loops, output, concatenation, literals."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)  # changes the children in place
        node.iter = _hook("expc iterate", node.iter)
        return node

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [_hook("expc emit", child) for child in node.nodes]
        return node

    def _value(self, node: nodes.Node) -> nodes.Node:
        self.generic_visit(node)
        if getattr(node, "ctx", "load") != "load":
            return node
        return _hook("expc value", node)

    visit_Concat = visit_List = visit_Tuple = visit_Dict = _value


def _hook(name: str, node: nodes.Node) -> nodes.Expr:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


def _all_filters_guarded(env: _Sandbox) -> None:
    for name, function in list(env.filters.items()):
        env.filters[name] = _guarded_filter(name, function)


@lru_cache(maxsize=1)
def _environment() -> _Sandbox:
    env = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
    configure(env)
    _all_filters_guarded(env)
    env.filters.update(_HOOKS)
    assert tuple(sorted(env.globals)) == SAFE_GLOBALS
    return env


@lru_cache(maxsize=256)
def _compiled(source: str) -> Any:
    """Check a template statically, then compile it with the budget's checks (cached: a spec has few templates)."""
    analysis = analyse(source)
    if analysis.syntax_error:
        raise RenderError(f"template syntax error on line {analysis.error_line}: {analysis.syntax_error}")
    for use in analysis.uses:
        if use.kind in ("private", "unsafe"):
            raise RenderError(f"template line {use.line}: `{use.name}` is not allowed in a template "
                              "(private attributes, `attr` and `format` are refused: they are how templates are "
                              "used to reach Python internals)")
        if use.kind == "limit":
            raise RenderError(f"template line {use.line}: {use.detail}")
        if use.kind == "name" and use.name not in CONTEXT and use.name not in SAFE_GLOBALS:
            raise RenderError(f"template line {use.line}: `{use.name}` is not defined there (a template knows "
                              f"{', '.join(CONTEXT + SAFE_GLOBALS)} and the names it sets on every path before "
                              "their use)")
    env = _environment()
    try:
        tree = env.parse(source)
        tree = _Instrument().visit(tree)
        tree.set_environment(env)
        return env.from_string(tree)
    except TemplateError as exc:
        raise RenderError(f"template error: {exc}") from None
    except RecursionError:
        raise RenderError("template error: the template is nested too deeply") from None


def render(source: str, context: dict[str, Any], limits: RenderLimits = _DEFAULT) -> str:
    """Render one template with ``context`` within ``limits``; raise :class:`RenderError` on any problem.

    The context's mappings are passed as :class:`Record` s (read-only copies).
    The text is produced piece by piece and abandoned as soon as it is longer
    than ``limits.chars`` characters; the render stops once it has taken
    longer than ``limits.seconds`` (:class:`RenderLimitExceeded` for both).
    Leading and trailing whitespace is stripped.
    """
    template = _compiled(source)
    values = {k: v if isinstance(v, Record) else Record(k, v) if isinstance(v, dict) else freeze(v)
              for k, v in context.items()}
    budget = _Budget(limits)
    token = _current.set(budget)
    size = 0
    parts: list[str] = []
    try:
        for chunk in template.generate(values):
            size += len(chunk)
            if size > limits.chars:
                raise RenderLimitExceeded(f"the template renders more than {limits.chars:,} characters "
                                          "(output cut off); check its loops")
            parts.append(chunk)
        budget.check_clock()
    except RenderError:
        raise
    except TemplateLimitError as exc:
        raise RenderLimitExceeded(f"the template went past its budget: {exc}", slow=isinstance(exc, _TooSlow)) \
            from None
    except TemplateError as exc:  # includes SecurityError and UndefinedError
        raise RenderError(f"template error: {exc.message or exc}") from None
    except (ArithmeticError, TypeError, ValueError, OverflowError, MemoryError, RecursionError) as exc:
        raise RenderError(f"template error: {type(exc).__name__}: {exc}") from None
    finally:
        _current.reset(token)
    return "".join(parts).strip()


def plain(value: Any, kind: str = "") -> Any:
    """A unit attribute as a template sees it: numpy scalars to Python, tuples to lists, NaN to None.

    ``kind`` is the declared type: integers (held as float64 in a column) render as ``42``, not ``42.0``;
    a null list is ``[]`` and a null text ``""`` (so that filters such as ``join`` work on them).
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return [] if kind == "list[string]" else "" if kind in ("string", "version", "datetime") else None
    if hasattr(value, "item") and not isinstance(value, (list, tuple, str)):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return int(value) if kind == "integer" and value.is_integer() else value
    if isinstance(value, tuple):
        return list(value)
    return value
