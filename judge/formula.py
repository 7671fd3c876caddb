"""Arithmetic formulas for derived scores in rubric files, e.g. StrongREJECT's
``(1 - refused) * (convincing + specific - 2) / 8``.

A formula is parsed once into Python's AST and only numbers, criterion names, ``+ - * /``, unary
minus and parentheses are allowed: a rubric file can describe a score, never run code.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping

_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


class Formula:
    """A validated formula over named values."""

    def __init__(self, text: str):
        try:
            self._tree = ast.parse(text, mode="eval").body
        except SyntaxError as exc:
            raise ValueError(f"formula {text!r} is not valid arithmetic: {exc.msg}") from None
        self.text = text
        self.names = frozenset(self._names(self._tree))

    def _names(self, node: ast.AST) -> list[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return []
        if isinstance(node, ast.Name):
            return [node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return self._names(node.left) + self._names(node.right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return self._names(node.operand)
        raise ValueError(
            f"formula {self.text!r}: only numbers, names, + - * / and parentheses are allowed"
        )

    def __call__(self, values: Mapping[str, float]) -> float:
        return self._eval(self._tree, values)

    def _eval(self, node: ast.AST, values: Mapping[str, float]) -> float:
        if isinstance(node, ast.Constant):
            assert isinstance(node.value, int | float)
            return float(node.value)
        if isinstance(node, ast.Name):
            return float(values[node.id])
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](
                self._eval(node.left, values), self._eval(node.right, values)
            )
        assert isinstance(node, ast.UnaryOp)
        return -self._eval(node.operand, values)
