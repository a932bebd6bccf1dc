"""Read metrics the way a test asserts on them: by name and labels, from a scrape or a registry."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

SeriesKey = tuple[str, frozenset[tuple[str, str]]]


@dataclass(frozen=True)
class MetricsSnapshot:
    """Every sample of one scrape, keyed by sample name and label set."""

    samples: Mapping[SeriesKey, float]

    @classmethod
    def from_families(cls, families: Iterable[Metric]) -> "MetricsSnapshot":
        return cls({(s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples})

    @classmethod
    def from_text(cls, text: str) -> "MetricsSnapshot":
        return cls.from_families(text_string_to_metric_families(text))

    def value(self, name: str, **labels: str) -> float:
        """The sum over every series of ``name`` whose labels include ``labels`` (0 when none)."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and wanted <= ls)

    def series(self, name: str | None = None) -> set[SeriesKey]:
        return {key for key in self.samples if name is None or key[0] == name}

    def label_values(self, name: str, label: str) -> set[str]:
        return {dict(ls)[label] for n, ls in self.samples if n == name and label in dict(ls)}


def scrape(base_url: str, timeout: float = 10.0) -> MetricsSnapshot:
    import httpx

    response = httpx.get(base_url + "/metrics", timeout=timeout)
    response.raise_for_status()
    return MetricsSnapshot.from_text(response.text)
