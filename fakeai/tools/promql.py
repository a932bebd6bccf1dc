"""The series selectors of a PromQL expression, read without a PromQL parser: enough to ask Prometheus
whether each selector has data and to name the metrics an expression needs.

A selector is a metric name with its optional ``{...}`` matchers (``rate(x_total{job="a"}[5m])`` has
``x_total{job="a"}``), or bare matchers (``{__name__=~"x.*"}``). Function and aggregation names (an
identifier before ``(``), keywords and set operators, the label lists of ``by``, ``without``, ``on``,
``ignoring``, ``group_left`` and ``group_right``, ranges and subqueries in ``[...]``, durations after
``offset``, numbers, and string literals are not selectors.
"""

import re
from dataclasses import dataclass

_LABEL_LISTS = frozenset(("by", "without", "on", "ignoring", "group_left", "group_right"))
_KEYWORDS = _LABEL_LISTS | {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2", "start", "end"}
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_NUMBER = re.compile(r"(?:0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)(?:[smhdwy]|ms)*")


@dataclass(frozen=True)
class Selector:
    name: str | None
    """The metric name, or None for a selector of matchers only."""
    matchers: str = ""
    """The ``{...}`` text as written, braces included; empty when there is none."""

    def __str__(self) -> str:
        return (self.name or "") + self.matchers


def _string_end(expr: str, start: int) -> int:
    """Index after the string literal that opens at ``start`` (quotes ``"`` or ``'`` with escapes; backticks raw)."""
    quote = expr[start]
    i = start + 1
    while i < len(expr):
        if expr[i] == "\\" and quote != "`":
            i += 2
            continue
        if expr[i] == quote:
            return i + 1
        i += 1
    return len(expr)


def _closing(expr: str, start: int, opening: str, closing: str) -> int:
    """Index after the bracket that closes the one at ``start``, skipping string literals."""
    depth = 0
    i = start
    while i < len(expr):
        char = expr[i]
        if char in "\"'`":
            i = _string_end(expr, i)
            continue
        if char == opening:
            depth += 1
        elif char == closing:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(expr)


def _skip_space(expr: str, i: int) -> int:
    while i < len(expr) and expr[i].isspace():
        i += 1
    return i


def _clause(expr: str, i: int) -> bool:
    """Whether ``by`` or ``without`` starts at ``i``: what follows an aggregation's name in ``sum by (a) (x)``."""
    word = _IDENTIFIER.match(expr, i)
    return word is not None and word.group(0).lower() in ("by", "without")


def selectors(expr: str) -> list[Selector]:
    """Every series selector of ``expr``, in order of appearance, repeats included."""
    found: list[Selector] = []
    i = 0
    while i < len(expr):
        char = expr[i]
        if char in "\"'`":
            i = _string_end(expr, i)
        elif char == "#":  # a comment runs to the end of the line
            newline = expr.find("\n", i)
            i = len(expr) if newline < 0 else newline
        elif char == "[":
            i = _closing(expr, i, "[", "]")
        elif char == "{":
            end = _closing(expr, i, "{", "}")
            found.append(Selector(None, expr[i:end]))
            i = end
        elif (number := _NUMBER.match(expr, i)) and (char.isdigit() or char == "."):
            i = number.end()
        elif identifier := _IDENTIFIER.match(expr, i):
            word = identifier.group(0)
            after = _skip_space(expr, identifier.end())
            if word.lower() in _LABEL_LISTS:
                # ``by (a, b)``; ``group_left`` may stand without a list
                i = _closing(expr, after, "(", ")") if after < len(expr) and expr[after] == "(" else after
            elif word.lower() in _KEYWORDS:
                i = identifier.end()
            elif (after < len(expr) and expr[after] == "(") or _clause(expr, after):
                i = after  # a function or an aggregation (``sum by (a) (x)``): its arguments are read next
            elif after < len(expr) and expr[after] == "{":
                end = _closing(expr, after, "{", "}")
                found.append(Selector(word, expr[after:end]))
                i = end
            else:
                found.append(Selector(word))
                i = identifier.end()
        else:
            i += 1
    return found


def metric_names(expr: str) -> list[str]:
    """The metric names ``expr`` selects by name, each once, in order of appearance."""
    names = [s.name for s in selectors(expr) if s.name is not None]
    return list(dict.fromkeys(names))
