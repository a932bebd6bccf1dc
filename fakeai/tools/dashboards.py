"""Run a Grafana dashboard's panel queries against a Prometheus server, as Grafana would, and say which
return data.

Grafana's part is reproduced where it changes the query Prometheus sees:
- template variables: ``label_values(...)`` queries resolved through Prometheus's series and label APIs,
  in dashboard order (a later variable may use an earlier one); ``custom`` and ``constant`` variables;
  the ``All`` option as Grafana's Prometheus data source writes it (the ``allValue`` when the variable
  has one, else every value as one regex alternation); several selected values as ``(a|b)``; values
  regex-escaped where a multi-value or ``All`` variable is interpolated, as Grafana does;
- ``$var``, ``${var}``, ``${var:raw}`` and ``[[var]]`` spellings;
- ``$__rate_interval`` (``max($__interval + scrape interval, 4 x scrape interval)``), ``$__interval``,
  ``$__range``, ``$__range_s`` and ``$__range_ms``;
- panels inside rows (collapsed rows keep theirs in ``panels``); a repeated row is evaluated once,
  with its variable at ``All``;
- instant targets as instant queries, the others as range queries over the dashboard's time range.

A target "has data" when Prometheus returns at least one series (with at least one point, for a range
query). ``Report`` keeps every resolved query and its outcome, so a failure names the query to rerun.
"""

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ALL = "$__all"
_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)\]\]|\$(\w+)")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<selector>.+?)\s*,\s*)?(?P<label>\w+)\s*\)\s*$", re.S)
_REGEX_SPECIAL = re.compile(r"([\\^$*+?.()|{}\[\]])")


@dataclass(frozen=True)
class Target:
    panel: str
    ref: str
    expr: str
    instant: bool


@dataclass(frozen=True)
class Variable:
    name: str
    kind: str
    query: str
    multi: bool
    include_all: bool
    all_value: str | None
    options: tuple[str, ...] = ()


@dataclass
class Dashboard:
    title: str
    targets: list[Target]
    variables: list[Variable]
    panels: list[dict[str, Any]] = field(repr=False)

    @classmethod
    def load(cls, path: Path | str) -> "Dashboard":
        return cls.from_board(json.loads(Path(path).read_text(encoding="utf-8")), str(path))

    @classmethod
    def from_board(cls, board: Mapping[str, Any], name: str = "dashboard") -> "Dashboard":
        """A dashboard's JSON model, parsed (from a file, or from a provisioning ConfigMap's data)."""
        panels = list(_panels(board.get("panels", [])))
        targets = [
            Target(
                panel=panel.get("title") or f"panel {panel.get('id')}",
                ref=target.get("refId", ""),
                expr=target["expr"],
                instant=bool(target.get("instant")) and not target.get("range", False),
            )
            for panel in panels
            for target in panel.get("targets", [])
            if target.get("expr") and not target.get("hide")
        ]
        return cls(board.get("title", name), targets, _variables(board), panels)

    def panel(self, title: str) -> dict[str, Any]:
        return next(p for p in self.panels if p.get("title") == title)


def _panels(panels: Sequence[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        if panel.get("type") == "row":
            yield from _panels(panel.get("panels", []))
        else:
            yield panel


def _variables(board: Mapping[str, Any]) -> list[Variable]:
    found = []
    for v in board.get("templating", {}).get("list", []):
        query = v.get("query", "")
        if isinstance(query, dict):
            query = query.get("query", "")
        options = tuple(o.get("value") for o in v.get("options", []) if isinstance(o.get("value"), str))
        if v.get("type") == "custom" and not options:
            options = tuple(part.strip() for part in str(query).split(",") if part.strip())
        found.append(
            Variable(
                name=v["name"],
                kind=v.get("type", "query"),
                query=str(query),
                multi=bool(v.get("multi")),
                include_all=bool(v.get("includeAll")),
                all_value=v.get("allValue") or None,
                options=options,
            )
        )
    return found


def display_text(panel: Mapping[str, Any], value: float) -> str | None:
    """The text a panel's value mappings show for ``value`` (Grafana's "value" mapping type)."""
    for mapping in panel.get("fieldConfig", {}).get("defaults", {}).get("mappings", []):
        if mapping.get("type") == "value":
            for key, result in mapping.get("options", {}).items():
                try:
                    matches = float(key) == value
                except ValueError:
                    matches = key == str(value)
                if matches:
                    text: str | None = result.get("text")
                    return text
    return None


class Prometheus:
    """The few calls of Prometheus's HTTP API that Grafana makes for a dashboard."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, params: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> Any:
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=self.timeout) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:  # a bad query is a 400 whose body says what is wrong
            body = json.loads(exc.read() or b"{}")
        if body.get("status") != "success":
            raise RuntimeError(body.get("error", "query failed"))
        return body["data"]

    def query(self, expr: str, *, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr} | ({"time": f"{at:.3f}"} if at is not None else {})
        result: list[dict[str, Any]] = self._get("/api/v1/query", params)["result"]
        return result

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        result: list[dict[str, Any]] = self._get("/api/v1/query_range", params)["result"]
        return result

    def label_values(self, label: str, selector: str | None, start: float, end: float) -> list[str]:
        if selector is None:
            values: list[str] = self._get(f"/api/v1/label/{label}/values", {"start": start, "end": end})
            return sorted(values)
        series = self._get("/api/v1/series", [("match[]", selector), ("start", start), ("end", end)])
        return sorted({s[label] for s in series if label in s})


@dataclass(frozen=True)
class Outcome:
    target: Target
    query: str
    series: int
    error: str | None = None

    @property
    def has_data(self) -> bool:
        return self.error is None and self.series > 0


@dataclass
class Report:
    dashboard: str
    values: dict[str, list[str]]
    outcomes: list[Outcome]

    @property
    def with_data(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.has_data]

    @property
    def without_data(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.has_data]

    def summary(self) -> str:
        return f"{self.dashboard}: {len(self.with_data)}/{len(self.outcomes)} targets with data"


@dataclass(frozen=True)
class TimeRange:
    """The dashboard's time range and the scrape interval, which Grafana's interval variables follow."""

    seconds: float = 600.0
    scrape_interval: float = 15.0
    max_points: int = 200

    @property
    def interval(self) -> float:
        return max(self.scrape_interval, self.seconds / self.max_points)

    @property
    def rate_interval(self) -> float:
        return max(self.interval + self.scrape_interval, 4 * self.scrape_interval)


def duration(seconds: float) -> str:
    return f"{int(seconds * 1000)}ms" if seconds < 1 or seconds != int(seconds) else f"{int(seconds)}s"


def interpolate(expr: str, variables: Sequence[Variable], values: Mapping[str, Sequence[str]], span: TimeRange) -> str:
    """``expr`` with every variable replaced as Grafana's Prometheus data source does."""
    builtins = {
        "__rate_interval": duration(span.rate_interval),
        "__interval": duration(span.interval),
        "__interval_ms": str(int(span.interval * 1000)),
        "__range": duration(span.seconds),
        "__range_s": str(int(span.seconds)),
        "__range_ms": str(int(span.seconds * 1000)),
    }
    by_name = {v.name: v for v in variables}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3) or match.group(4)
        fmt = match.group(2)
        if name in builtins:
            return builtins[name]
        variable = by_name.get(name)
        if variable is None or name not in values:
            return match.group(0)  # not a variable: Grafana leaves it as written
        chosen = list(values[name])
        if fmt == "raw":
            return ",".join(chosen)
        if variable.include_all and chosen == [ALL]:
            if variable.all_value is not None:
                return variable.all_value
            chosen = list(variable.options)
        if variable.multi or variable.include_all:
            escaped = [_REGEX_SPECIAL.sub(r"\\\\\1", value) for value in chosen]
            return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
        # One value of a plain variable: Grafana's prometheusRegularEscape (backslashes, single quotes).
        return (chosen[0] if chosen else "").replace("\\", "\\\\").replace("'", "\\\\'")

    return _VARIABLE.sub(replace, expr)


def resolve_variables(
    dashboard: Dashboard, prometheus: Prometheus, span: TimeRange, chosen: Mapping[str, Sequence[str]] | None = None
) -> tuple[list[Variable], dict[str, list[str]]]:
    """Every variable's options from Prometheus, in order; selected values from ``chosen``, else ``All``
    where the variable offers it, else its first option."""
    chosen = chosen or {}
    now = time.time()
    resolved: list[Variable] = []
    values: dict[str, list[str]] = {}
    for variable in dashboard.variables:
        options = variable.options
        if variable.kind == "query":
            match = _LABEL_VALUES.match(variable.query)
            if match is not None:
                selector = match.group("selector")
                if selector is not None:
                    selector = interpolate(selector, resolved, values, span)
                options = tuple(prometheus.label_values(match.group("label"), selector, now - span.seconds, now))
        elif variable.kind == "constant":
            options = (variable.query,)
        elif variable.kind not in ("custom", "interval"):
            continue  # datasource, textbox, adhoc: nothing a query reads
        variable = Variable(
            variable.name,
            variable.kind,
            variable.query,
            variable.multi,
            variable.include_all,
            variable.all_value,
            options,
        )
        resolved.append(variable)
        if variable.name in chosen:
            values[variable.name] = list(chosen[variable.name])
        elif variable.include_all:
            values[variable.name] = [ALL]
        else:
            values[variable.name] = list(options[:1])
    return resolved, values


def evaluate(
    dashboard: Dashboard,
    prometheus: Prometheus,
    span: TimeRange = TimeRange(),
    chosen: Mapping[str, Sequence[str]] | None = None,
) -> Report:
    """Run every panel target of ``dashboard`` with the variables resolved; see ``Report``."""
    variables, values = resolve_variables(dashboard, prometheus, span, chosen)
    outcomes = []
    end = time.time()
    for target in dashboard.targets:
        query = interpolate(target.expr, variables, values, span)
        try:
            if target.instant:
                series = len(prometheus.query(query, at=end))
            else:
                result = prometheus.query_range(query, end - span.seconds, end, span.interval)
                series = sum(1 for s in result if s.get("values"))
            outcomes.append(Outcome(target, query, series))
        except (OSError, RuntimeError, ValueError) as exc:
            outcomes.append(Outcome(target, query, 0, f"{type(exc).__name__}: {exc}"))
    return Report(dashboard.title, values, outcomes)
