"""Which rules of a Prometheus rule file have data to work on.

A thresholded alert is empty on a healthy system, so an expression's own result says little; what a rule
needs is that every series selector it uses has data. ``check_rules`` asks Prometheus that for each
selector over the time range, and evaluates the whole expression only as information (how many series
it returns now).
"""

from dataclasses import dataclass
from pathlib import Path

import yaml

from fakeai.tools.dashboards import Prometheus, TimeRange, duration
from fakeai.tools.promql import selectors


class RuleFileError(ValueError):
    pass


@dataclass(frozen=True)
class Rule:
    name: str
    """The alert's or recording rule's name."""
    kind: str
    """``alert`` or ``record``."""
    expr: str


@dataclass(frozen=True)
class RuleOutcome:
    rule: Rule
    selectors: tuple[tuple[str, bool], ...]
    """Each selector of the expression and whether it has data."""
    series: int | None
    """Series the expression returns now; None when it fails."""
    error: str | None = None

    @property
    def missing(self) -> list[str]:
        return [selector for selector, has_data in self.selectors if not has_data]

    @property
    def has_data(self) -> bool:
        return self.error is None and not self.missing


@dataclass
class RuleReport:
    file: str
    outcomes: list[RuleOutcome]

    def summary(self) -> str:
        ready = sum(o.has_data for o in self.outcomes)
        return f"{self.file}: {ready}/{len(self.outcomes)} rules with data for every selector"


def load_rules(path: Path) -> list[Rule]:
    """The rules of a Prometheus rule file (``groups`` of ``rules``, each ``alert`` or ``record`` with ``expr``)."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RuleFileError(f"{path}: {exc}".replace("\n", " ")) from None
    if not isinstance(document, dict) or not isinstance(document.get("groups"), list):
        raise RuleFileError(f"{path}: not a Prometheus rule file (no 'groups' list)")
    rules = []
    for g, group in enumerate(document["groups"]):
        for r, rule in enumerate(group.get("rules") or [] if isinstance(group, dict) else []):
            kind = "alert" if isinstance(rule, dict) and "alert" in rule else "record"
            if (
                not isinstance(rule, dict)
                or not isinstance(rule.get(kind), str)
                or not isinstance(rule.get("expr"), str)
            ):
                raise RuleFileError(f"{path}: groups[{g}].rules[{r}] needs 'alert' or 'record', and 'expr'")
            rules.append(Rule(rule[kind], kind, rule["expr"]))
    return rules


def check_rules(path: Path, prometheus: Prometheus, span: TimeRange) -> RuleReport:
    outcomes = []
    window = duration(span.seconds)
    for rule in load_rules(path):
        try:
            found = tuple(dict.fromkeys(str(selector) for selector in selectors(rule.expr)))
            checked = tuple(
                (selector, bool(prometheus.query(f"count(present_over_time({selector}[{window}]))")))
                for selector in found
            )
            outcomes.append(RuleOutcome(rule, checked, len(prometheus.query(rule.expr))))
        except (OSError, RuntimeError, ValueError) as exc:
            outcomes.append(RuleOutcome(rule, (), None, f"{type(exc).__name__}: {exc}"))
    return RuleReport(str(path), outcomes)
