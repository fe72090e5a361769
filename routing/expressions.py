"""A small, safe expression language for routing data files.

Workflows and queues select tasks and agents with expressions such as
``category == 'social_work' or urgent`` or ``skills.id_card >= 3 and 'th' in languages``.
They are parsed with Python's own grammar, but only comparisons, boolean logic,
membership, literals, names, attribute and item look-ups are allowed; nothing is called.
A name that is not there reads as ``None``, so a filter on an absent attribute is false
instead of an error.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

Evaluator = Callable[[Mapping[str, Any]], Any]


class ExpressionError(ValueError):
    """The expression is not valid; the message says what and where (column)."""


_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: b is not None and a in b,
    ast.NotIn: lambda a, b: b is None or a not in b,
}


def compile_expression(source: str) -> Evaluator:
    """Compile `source` into a function of a context mapping; raise `ExpressionError`."""
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("empty expression")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"syntax error at column {exc.offset}: {exc.msg}") from None
    return _compile(tree.body)


def matches(evaluator: Evaluator | None, context: Mapping[str, Any]) -> bool:
    """True when there is no expression, or when it evaluates truthy on `context`."""
    if evaluator is None:
        return True
    try:
        return bool(evaluator(context))
    except (TypeError, ValueError, KeyError, AttributeError):
        # Comparing values of the wrong type (None < 3) means "does not match".
        return False


def _get(container: Any, key: Any) -> Any:
    if isinstance(container, Mapping):
        return container.get(key)
    if isinstance(container, list | tuple) and isinstance(key, int):
        return container[key] if -len(container) <= key < len(container) else None
    return None


def _compile(node: ast.expr) -> Evaluator:
    if isinstance(node, ast.Constant):
        value = node.value
        if not isinstance(value, str | int | float | bool | type(None)):
            raise ExpressionError(f"column {node.col_offset}: literal {value!r} not allowed")
        return lambda _ctx: value
    if isinstance(node, ast.Name):
        name = node.id
        if name in ("true", "false", "null"):
            constant = {"true": True, "false": False, "null": None}[name]
            return lambda _ctx: constant
        return lambda ctx: ctx.get(name)
    if isinstance(node, ast.Attribute):
        inner = _compile(node.value)
        attr = node.attr
        return lambda ctx: _get(inner(ctx), attr)
    if isinstance(node, ast.Subscript):
        inner = _compile(node.value)
        key = _compile(node.slice)
        return lambda ctx: _get(inner(ctx), key(ctx))
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        items = [_compile(e) for e in node.elts]
        return lambda ctx: [item(ctx) for item in items]
    if isinstance(node, ast.BoolOp):
        parts = [_compile(v) for v in node.values]
        if isinstance(node.op, ast.And):
            return lambda ctx: all(p(ctx) for p in parts)
        return lambda ctx: any(p(ctx) for p in parts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        operand = _compile(node.operand)
        return lambda ctx: not operand(ctx)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        operand = _compile(node.operand)
        return lambda ctx: -operand(ctx)
    if isinstance(node, ast.Compare):
        return _compile_compare(node)
    raise ExpressionError(
        f"column {node.col_offset}: {type(node).__name__} is not allowed in an expression"
    )


def _compile_compare(node: ast.Compare) -> Evaluator:
    left = _compile(node.left)
    steps: list[tuple[Callable[[Any, Any], bool], Evaluator]] = []
    for op, comparator in zip(node.ops, node.comparators, strict=True):
        fn = _COMPARE.get(type(op))
        if fn is None:
            raise ExpressionError(f"column {node.col_offset}: operator not allowed")
        steps.append((fn, _compile(comparator)))

    def evaluate(ctx: Mapping[str, Any]) -> bool:
        current = left(ctx)
        for fn, right in steps:
            value = right(ctx)
            if not fn(current, value):
                return False
            current = value
        return True

    return evaluate
