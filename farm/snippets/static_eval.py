"""Evaluate the straight-line parts of a Python module without running it.

Importing a suite would run its code on the farm's machine with the farm's environment. Instead
its source is parsed (``ast``) and only what can be known without executing anything is computed:
literals, f-strings, string and list operations, ``if`` on known values, and calls of functions
whose bodies are themselves of that kind (the suite's own helpers) or of a few known pure
functions. Anything else — a module attribute such as ``os.environ``, an unknown call, a loop —
raises ``NotStatic`` naming the line, and the caller skips that test instead of running it.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass, field
from typing import Any, Callable

MAX_STEPS = 200_000        # evaluation steps per top-level call: no loop can hang the loader
MAX_DEPTH = 24             # nested calls of static functions
MAX_TEXT = 4 * 1024 * 1024  # characters of any string built: no ``"x" * 10**12``


class NotStatic(Exception):
    """This value needs the code to run; the message names the line and the reason."""


@dataclass
class StaticFunction:
    """A function defined in the source: evaluated, never called."""

    node: ast.FunctionDef
    scope: "Scope"
    attrs: dict[str, Any] = field(default_factory=dict)  # e.g. single_run set on the function


@dataclass
class Opaque:
    """A name bound to something only running the code would give (an imported module, say)."""

    what: str


PURE_STR_METHODS = frozenset({"strip", "lstrip", "rstrip", "format", "join", "replace", "upper", "lower",
                              "startswith", "endswith", "splitlines", "split"})
PURE_FUNCTIONS: dict[str, Callable[..., Any]] = {"textwrap.dedent": textwrap.dedent, "dedent": textwrap.dedent,
                                                 "str": str, "len": len, "bool": bool, "int": int, "list": list,
                                                 "dict": dict, "tuple": tuple, "sorted": sorted}
BINOPS: dict[type, Callable[[Any, Any], Any]] = {ast.Add: lambda a, b: a + b, ast.Mult: lambda a, b: a * b,
                                                 ast.Mod: lambda a, b: a % b}
COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b, ast.Is: lambda a, b: a is b,
    ast.IsNot: lambda a, b: a is not b, ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b}


class Scope:
    """Names of one module or call; ``budget`` is shared by everything one evaluation starts."""

    def __init__(self, names: dict[str, Any], parent: "Scope | None" = None, budget: list[int] | None = None):
        self.names, self.parent = names, parent
        self.budget = budget if budget is not None else (parent.budget if parent else [MAX_STEPS])

    def lookup(self, name: str, node: ast.AST) -> Any:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.names:
                value = scope.names[name]
                if isinstance(value, Opaque):
                    raise NotStatic(f"line {node.lineno}: {name} is {value.what}")
                return value
            scope = scope.parent
        raise NotStatic(f"line {node.lineno}: {name!r} is not defined statically")

    def tick(self, node: ast.AST) -> None:
        self.budget[0] -= 1
        if self.budget[0] < 0:
            raise NotStatic(f"line {getattr(node, 'lineno', '?')}: too much work to evaluate without running")


class _Return(Exception):
    def __init__(self, value: Any):
        self.value = value


def _bounded(value: Any, node: ast.AST) -> Any:
    if isinstance(value, (str, list, tuple, dict)) and len(value) > MAX_TEXT:
        raise NotStatic(f"line {node.lineno}: a value larger than {MAX_TEXT} items")
    return value


def evaluate(node: ast.expr, scope: Scope, depth: int = 0) -> Any:
    """The value of expression ``node``, or NotStatic."""
    scope.tick(node)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return scope.lookup(node.id, node)
    if isinstance(node, ast.JoinedStr):
        return _bounded("".join(str(evaluate(v, scope, depth)) for v in node.values), node)
    if isinstance(node, ast.FormattedValue):
        value = evaluate(node.value, scope, depth)
        value = {-1: value, 115: str(value), 114: repr(value), 97: ascii(value)}[node.conversion]
        spec = evaluate(node.format_spec, scope, depth) if node.format_spec else ""
        _no_wide_fields(str(spec), node)
        return format(value, spec)
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = [evaluate(e, scope, depth) for e in node.elts]
        return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](items)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise NotStatic(f"line {node.lineno}: '**' in a dict literal")
        return {evaluate(k, scope, depth): evaluate(v, scope, depth) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.BinOp) and type(node.op) in BINOPS:
        left, right = evaluate(node.left, scope, depth), evaluate(node.right, scope, depth)
        if isinstance(node.op, ast.Mod) and isinstance(left, str):
            _no_wide_fields(left, node, WIDE_PERCENT)
        if isinstance(node.op, ast.Mult) and isinstance(right, int) and isinstance(left, (str, list)) \
                and len(left) * right > MAX_TEXT:
            raise NotStatic(f"line {node.lineno}: a value larger than {MAX_TEXT} items")
        return _bounded(BINOPS[type(node.op)](left, right), node)
    if isinstance(node, ast.BoolOp):
        value = evaluate(node.values[0], scope, depth)
        for item in node.values[1:]:
            if (isinstance(node.op, ast.And) and not value) or (isinstance(node.op, ast.Or) and value):
                return value
            value = evaluate(item, scope, depth)
        return value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not evaluate(node.operand, scope, depth)
    if isinstance(node, ast.Compare) and all(type(op) in COMPARE for op in node.ops):
        left = evaluate(node.left, scope, depth)
        for op, comparator in zip(node.ops, node.comparators):
            right = evaluate(comparator, scope, depth)
            if not COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        return evaluate(node.body if evaluate(node.test, scope, depth) else node.orelse, scope, depth)
    if isinstance(node, ast.Subscript):
        container, key = evaluate(node.value, scope, depth), evaluate(node.slice, scope, depth)
        if not isinstance(container, (str, list, tuple, dict)):
            raise NotStatic(f"line {node.lineno}: indexing something that is not a literal")
        try:
            return container[key]
        except (KeyError, IndexError, TypeError) as exc:
            raise NotStatic(f"line {node.lineno}: {type(exc).__name__} while indexing") from None
    if isinstance(node, ast.Call):
        return _call(node, scope, depth)
    if isinstance(node, ast.Attribute):  # the base's own reason first (e.g. "os is the module os")
        base = evaluate(node.value, scope, depth)
        raise NotStatic(f"line {node.lineno}: .{node.attr} of a {type(base).__name__} needs the code to run")
    raise NotStatic(f"line {node.lineno}: {type(node).__name__} needs the code to run")


# A width or precision of 100000+ characters, or one taken from the arguments, would build a huge
# string before its size could be checked.
WIDE_SPEC = re.compile(r"\d{6,}")                                       # a format spec alone (f-strings)
WIDE_BRACE = re.compile(r"\{[^{}]*:[^{}]*(\d{6,}|\{)")                  # str.format fields
WIDE_PERCENT = re.compile(r"%[#0\- +]*(\d{6,}|\*)|%[#0\- +]*\d*\.(\d{6,}|\*)")  # printf-style


def _no_wide_fields(fmt: str, node: ast.AST, pattern: re.Pattern = WIDE_SPEC) -> None:
    if pattern.search(fmt):
        raise NotStatic(f"line {node.lineno}: a format with a huge or computed field width")


def _guard_str_call(target: str, method: str, args: list[Any], node: ast.AST) -> None:
    """The size a str method would produce, checked before it runs."""
    if method == "format":
        _no_wide_fields(target, node, WIDE_BRACE)
    elif method == "join" and args and isinstance(args[0], (list, tuple)):
        size = sum(len(x) for x in args[0] if isinstance(x, str)) + len(target) * len(args[0])
        if size > MAX_TEXT:
            raise NotStatic(f"line {node.lineno}: a value larger than {MAX_TEXT} items")
    elif method == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        count = target.count(args[0]) if args[0] else len(target) + 1
        if len(target) + count * len(args[1]) > MAX_TEXT:
            raise NotStatic(f"line {node.lineno}: a value larger than {MAX_TEXT} items")


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _call(node: ast.Call, scope: Scope, depth: int) -> Any:
    if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
        raise NotStatic(f"line {node.lineno}: '*' or '**' arguments")
    func = node.func
    if isinstance(func, ast.Attribute) and not (_dotted(func) in PURE_FUNCTIONS):
        target = evaluate(func.value, scope, depth)
        if isinstance(target, str) and func.attr in PURE_STR_METHODS:
            args = [evaluate(a, scope, depth) for a in node.args]
            kwargs = {k.arg: evaluate(k.value, scope, depth) for k in node.keywords}
            try:
                _guard_str_call(target, func.attr, args, node)
                return _bounded(getattr(target, func.attr)(*args, **kwargs), node)
            except (TypeError, ValueError, KeyError, IndexError) as exc:
                raise NotStatic(f"line {node.lineno}: str.{func.attr} raised {type(exc).__name__}") from None
        raise NotStatic(f"line {node.lineno}: calls .{func.attr}() on something that is not a string")
    name = _dotted(func)
    args = [evaluate(a, scope, depth) for a in node.args]
    kwargs = {k.arg: evaluate(k.value, scope, depth) for k in node.keywords}
    if name is not None and isinstance(func, ast.Name) and _bound(scope, name):
        target = scope.lookup(name, node)
    elif name in PURE_FUNCTIONS:
        target = PURE_FUNCTIONS[name]
    else:
        raise NotStatic(f"line {node.lineno}: calls {name or 'an expression'}(), which only running the code can answer")
    if isinstance(target, StaticFunction):
        return call_static(target, args, kwargs, depth + 1)
    if callable(target) and getattr(target, "farm_static_safe", False) or target in PURE_FUNCTIONS.values():
        try:
            return _bounded(target(*args, **kwargs), node)
        except (TypeError, ValueError) as exc:
            raise NotStatic(f"line {node.lineno}: {name}() raised {type(exc).__name__}: {exc}") from None
    raise NotStatic(f"line {node.lineno}: {name} is not a function the farm can evaluate")


def _bound(scope: Scope, name: str) -> bool:
    while scope is not None:
        if name in scope.names:
            return True
        scope = scope.parent  # type: ignore[assignment]
    return False


def call_static(function: StaticFunction, args: list[Any], kwargs: dict[str, Any], depth: int = 0) -> Any:
    """Evaluate a call of a function defined in the source, with known arguments."""
    node = function.node
    if depth > MAX_DEPTH:
        raise NotStatic(f"line {node.lineno}: calls nest deeper than {MAX_DEPTH}")
    params = node.args
    if params.posonlyargs or params.kwonlyargs:
        raise NotStatic(f"line {node.lineno}: positional-only or keyword-only parameters")
    names: dict[str, Any] = {}
    defaults = [evaluate(d, function.scope, depth) for d in params.defaults]
    positional = [a.arg for a in params.args]
    first_default = len(positional) - len(defaults)
    for index, param in enumerate(positional):
        if index < len(args):
            names[param] = args[index]
        elif param in kwargs:
            names[param] = kwargs.pop(param)
        elif index >= first_default:
            names[param] = defaults[index - first_default]
        else:
            raise NotStatic(f"line {node.lineno}: {node.name}() called without {param!r}")
    extra = args[len(positional):]
    if extra and not params.vararg:
        raise NotStatic(f"line {node.lineno}: {node.name}() called with too many arguments")
    if params.vararg:
        names[params.vararg.arg] = tuple(extra)
    if kwargs and not params.kwarg:
        raise NotStatic(f"line {node.lineno}: {node.name}() has no parameter {next(iter(kwargs))!r}")
    if params.kwarg:
        names[params.kwarg.arg] = dict(kwargs)
    scope = Scope(names, parent=function.scope)
    try:
        run_body(node.body, scope, function, depth)
    except _Return as done:
        return done.value
    return None


def run_body(body: list[ast.stmt], scope: Scope, function: StaticFunction, depth: int) -> None:
    """Execute straight-line statements symbolically; raise _Return at ``return``."""
    for stmt in body:
        scope.tick(stmt)
        if isinstance(stmt, ast.Return):
            raise _Return(evaluate(stmt.value, scope, depth) if stmt.value else None)
        if isinstance(stmt, ast.Pass) or (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)):
            continue
        if isinstance(stmt, ast.Assign):
            value = evaluate(stmt.value, scope, depth)
            for target in stmt.targets:
                _assign(target, value, scope, function)
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            _assign(stmt.target, evaluate(stmt.value, scope, depth), scope, function)
        elif isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name) and type(stmt.op) in BINOPS:
            current = scope.lookup(stmt.target.id, stmt)
            scope.names[stmt.target.id] = _bounded(BINOPS[type(stmt.op)](current, evaluate(stmt.value, scope, depth)),
                                                   stmt)
        elif isinstance(stmt, ast.If):
            run_body(stmt.body if evaluate(stmt.test, scope, depth) else stmt.orelse, scope, function, depth)
        elif isinstance(stmt, ast.Expr) and _is_list_append(stmt.value):
            call = stmt.value
            target = evaluate(call.func.value, scope, depth)  # type: ignore[attr-defined]
            if not isinstance(target, list) or len(call.args) != 1 or call.keywords:  # type: ignore[attr-defined]
                raise NotStatic(f"line {stmt.lineno}: .{call.func.attr}() on something that is not a list")  # type: ignore[attr-defined]
            item = evaluate(call.args[0], scope, depth)  # type: ignore[attr-defined]
            getattr(target, call.func.attr)(item)  # type: ignore[attr-defined]
            _bounded(target, stmt)
        else:
            raise NotStatic(f"line {stmt.lineno}: a {type(stmt).__name__} statement needs the code to run")


def _is_list_append(node: ast.expr) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("append", "extend"))


def _assign(target: ast.expr, value: Any, scope: Scope, function: StaticFunction | None) -> None:
    if isinstance(target, ast.Name):
        scope.names[target.id] = value
    elif (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and function is not None
          and target.value.id == function.node.name):
        function.attrs[target.attr] = value  # AISB's ``test_x.single_run = True`` inside test_x
    elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
        container = scope.lookup(target.value.id, target)
        if not isinstance(container, (dict, list)):
            raise NotStatic(f"line {target.lineno}: item assignment on something that is not a dict or list")
        try:
            container[evaluate(target.slice, scope)] = value  # e.g. config["packages"] = packages
        except (IndexError, TypeError) as exc:
            raise NotStatic(f"line {target.lineno}: {type(exc).__name__} in item assignment") from None
    else:
        raise NotStatic(f"line {target.lineno}: assigning to {type(target).__name__} needs the code to run")
