"""Per-group sums of a snapshot's series ("folds"), one flat vector per snapshot, positions shared.

Within one epoch a window's increase is the fold at its end minus the fold at its start. A fold keeps
its sums in one vector, at positions a ``FoldLayout`` hands out per (family, grouping label, group)
and, for histograms, per bucket layout as well: the starts of a hundred windows stack into one matrix,
and every group's increase over every window is one array subtraction instead of a hundred lookups.
"""

import functools
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bridge.snapshot import LabelKey, Snapshot

Read = tuple[str, str | None]
"""A family's name and the label its series are summed by (None: every series in one group, "")."""
HistogramBlock = tuple[tuple[str, bytes], tuple[np.ndarray, int]]
"""A histogram group's (group, bucket layout) and its (bounds, position) in a fold's vector."""


MAX_SHAPES = 64
"""The ``FoldShape``s a layout keeps: a source whose groups change between snapshots makes a new one each
time (selections keep a few each)."""


@functools.lru_cache(maxsize=65536)
def labels(key: LabelKey) -> dict[str, str]:
    """A series key as a dict, made once per series (keys are bounded by the source's cardinality).
    Callers only read it."""
    return dict(key)


def group_of(key: LabelKey, label: str | None) -> str:
    return labels(key).get(label, "") if label else ""


@dataclass
class HistogramSum:
    """Cumulative bucket counts at ``bounds`` with their sum and count: the sum of a group's histograms
    at one snapshot, or its increase over a window."""

    bounds: np.ndarray
    counts: np.ndarray
    total: float
    count: float

    def __iter__(self) -> Iterator[Any]:
        return iter((self.bounds, self.counts, self.total, self.count))


def add_histogram(
    into: dict[tuple[str, bytes], HistogramSum],
    key: tuple[str, bytes],
    bounds: np.ndarray,
    counts: np.ndarray,
    total: float,
    count: float,
) -> None:
    found = into.get(key)
    if found is None:
        into[key] = HistogramSum(bounds, counts.astype(float), total, count)  # a copy: never the snapshot's
    else:
        found.counts = found.counts + counts
        found.total += total
        found.count += count


@dataclass(frozen=True, eq=False)
class FoldPlan:
    """What a fold sums: families read as numbers and as histograms, each with its grouping label, and
    which series the selection keeps. Compared by identity: one plan object per (mapping, selection)."""

    values: tuple[Read, ...]
    histograms: tuple[Read, ...]
    keep: Callable[[LabelKey], bool] | None
    """Whether the selection keeps a series; None: it keeps every series (and no call is made)."""

    def keeps(self, key: LabelKey) -> bool:
        return self.keep is None or self.keep(key)

    @functools.cached_property
    def families(self) -> tuple[tuple[str, tuple[str | None, ...]], ...]:
        """Each family of ``values`` with the labels it is read by, in the order of ``values``."""
        by_family: dict[str, list[str | None]] = {}
        for name, label in self.values:
            by_family.setdefault(name, []).append(label)
        return tuple((name, tuple(grouped_by)) for name, grouped_by in by_family.items())


class FoldLayout:
    """Where each sum lives in a fold's vector: a number takes one position, a histogram's group takes
    its bucket counts, then its sum, then its count. Positions are only added (groups appear as series
    do), so a fold made earlier is a prefix of the layout and reads 0 past its end."""

    def __init__(self) -> None:
        self._positions: dict[tuple[str, str | None, str, bytes | None], int] = {}
        self._blocks: dict[tuple[str, str | None, str, bytes], HistogramBlock] = {}
        self._shapes: dict[tuple[Any, ...], FoldShape] = {}
        self.size = 0

    def position(self, key: tuple[str, str | None, str, bytes | None], width: int) -> int:
        found = self._positions.get(key)
        if found is None:
            found = self._positions[key] = self.size
            self.size += width
        return found

    def block(self, read: Read, group: str, bucket_layout: bytes, bounds: np.ndarray) -> HistogramBlock:
        """Where a histogram group of ``read`` lives, as a fold's ``histograms`` holds it: the same two
        tuples for every fold of the layout. A dict made of tuples that a collection has already seen is
        never tracked by the garbage collector, where one made of new tuples is walked by every collection
        until a full one: a fold a second, five such dicts a fold."""
        name, label = read
        key = (name, label, group, bucket_layout)
        found = self._blocks.get(key)
        if found is None:
            position = self.position(key, len(bounds) + 2)
            found = self._blocks[key] = ((group, bucket_layout), (bounds, position))
        return found

    def shape(
        self,
        groups: dict[Read, dict[str, int]],
        histograms: dict[Read, dict[tuple[str, bytes], tuple[np.ndarray, int]]],
    ) -> "FoldShape":
        """The one ``FoldShape`` of this layout that holds these groups at these places."""
        key = (
            tuple((read, tuple(placed.items())) for read, placed in groups.items()),
            tuple((read, tuple(blocks)) for read, blocks in histograms.items()),
        )
        found = self._shapes.get(key)
        if found is None:
            if len(self._shapes) >= MAX_SHAPES:
                self._shapes.clear()  # groups that keep changing: bounded, at the cost of indexes made again
            found = self._shapes[key] = FoldShape(self, groups, histograms)
        return found


class FoldShape:
    """Which groups a fold holds and where: its ``groups`` and ``histograms`` (see ``Fold``), with the
    array indexes that windows computed together read them by (``bridge.categories.WindowSet``), made once.
    The folds of successive snapshots nearly always hold the same groups at the same places, and share
    one shape (``FoldLayout.shape``): a tick's hundred windows then look these indexes up instead of
    making them again from the dicts."""

    def __init__(
        self,
        layout: "FoldLayout",
        groups: dict[Read, dict[str, int]],
        histograms: dict[Read, dict[tuple[str, bytes], tuple[np.ndarray, int]]],
    ) -> None:
        self.layout, self.groups, self.histograms = layout, groups, histograms

    @functools.cached_property
    def positions(self) -> np.ndarray:
        """Every number's position (not the histograms'), ascending."""
        return np.array(sorted({position for placed in self.groups.values() for position in placed.values()}), np.intp)

    @functools.cached_property
    def columns(self) -> dict[Read, tuple[list[str], np.ndarray]]:
        """For each read, its groups in order and where each one's number lies in ``positions``."""
        column_of = {position: column for column, position in enumerate(self.positions.tolist())}
        return {
            read: (list(placed), np.array([column_of[position] for position in placed.values()], np.intp))
            for read, placed in self.groups.items()
        }

    @functools.cached_property
    def signature(self) -> tuple[tuple[Read, tuple[tuple[str, bytes], ...]], ...]:
        """Each histogram read's (group, bucket layout) pairs, in order."""
        return tuple((read, tuple(blocks)) for read, blocks in self.histograms.items())


@dataclass(eq=False)
class Fold:
    """The selected series of one snapshot summed per group, at the positions of ``layout``."""

    layout: FoldLayout
    vector: np.ndarray
    numbers: tuple[float, ...]
    """``vector`` as Python floats: what a window computed alone reads, a number at a time. A tuple, not
    a list: the cache keeps hundreds of folds of thousands of numbers, and the garbage collector stops
    walking a tuple of floats once it has seen it, where it walks every item of a list on every full
    collection (measured with the cache full: 1.5 ms a full collection with lists, 0.95 ms with tuples)."""
    shape: FoldShape

    @property
    def groups(self) -> dict[Read, dict[str, int]]:
        """For each read, the groups this snapshot has, in the order its series met them, and their positions."""
        return self.shape.groups

    @property
    def histograms(self) -> dict[Read, dict[tuple[str, bytes], tuple[np.ndarray, int]]]:
        """For each read, each (group, bucket layout) this snapshot has: its bounds and the block's position."""
        return self.shape.histograms

    def number(self, position: int) -> float:
        return self.numbers[position] if position < len(self.numbers) else 0.0

    def block(self, position: int, width: int) -> np.ndarray:
        """``width`` numbers from ``position``, zeros past the vector's end."""
        found = self.vector[position : position + width]
        return found if len(found) == width else np.concatenate((found, np.zeros(width - len(found))))


def fold(snapshot: Snapshot, plan: FoldPlan, layout: FoldLayout) -> Fold:
    """Sum ``snapshot``'s series that ``plan`` keeps, per group, in the order the series come (the
    order decides a float sum's last bits: every reader of this fold sees the same sums)."""
    keep = plan.keep
    sums: dict[Read, dict[str, float]] = {read: {} for read in plan.values}
    for name, grouped_by in plan.families:  # each family's series once, for every label it is read by
        targets = [(label, sums[(name, label)]) for label in grouped_by]
        series = snapshot.values.get(name, {})
        for key, value in series.items() if keep is None else ((k, v) for k, v in series.items() if keep(k)):
            found = labels(key)
            for label, into in targets:
                group = found.get(label, "") if label else ""
                into[group] = into.get(group, 0.0) + value
    groups: dict[Read, dict[str, int]] = {}
    numbers: list[tuple[int, float]] = []
    for read, group_sums in sums.items():
        name, label = read
        placed = groups[read] = {group: layout.position((name, label, group, None), 1) for group in group_sums}
        numbers.extend(zip(placed.values(), group_sums.values(), strict=True))
    histograms: dict[Read, dict[tuple[str, bytes], tuple[np.ndarray, int]]] = {}
    blocks: list[tuple[int, HistogramSum]] = []
    for read in plan.histograms:
        name, label = read
        histogram_sums: dict[tuple[str, bytes], HistogramSum] = {}
        for key, bounds, cumulative, total, count in snapshot.histogram_series(name):
            if plan.keeps(key):
                grouped = (group_of(key, label), bounds.tobytes())
                add_histogram(histogram_sums, grouped, bounds, cumulative, total, count)
        placed_blocks = histograms[read] = {}
        for (group, bucket_layout), summed in histogram_sums.items():
            block_key, where = layout.block(read, group, bucket_layout, summed.bounds)
            placed_blocks[block_key] = where  # the layout's own tuples, never new ones
            blocks.append((where[1], summed))
    vector = np.zeros(layout.size)
    if numbers:
        positions, sums_in_order = zip(*numbers, strict=True)
        vector[list(positions)] = sums_in_order
    for position, summed in blocks:
        width = len(summed.bounds)
        vector[position : position + width] = summed.counts
        vector[position + width] = summed.total
        vector[position + width + 1] = summed.count
    return Fold(layout, vector, tuple(vector.tolist()), layout.shape(groups, histograms))


class FoldCache:
    """The folds of recently used (snapshot, plan) pairs, least recently used dropped first, in one
    layout. A default server's layout is about 2,000 positions (16 KiB a fold). Memory is bounded by
    ``limit`` folds of at most ``max_positions`` numbers (and one snapshot's worth): a source whose
    groups outgrow it starts a new layout, and its folds are made again."""

    def __init__(self, limit: int = 512, max_positions: int = 16384) -> None:
        self.limit = limit
        self.max_positions = max_positions
        self.layout = FoldLayout()
        self._entries: OrderedDict[tuple[int, FoldPlan], tuple[Snapshot, Fold]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def fold(self, snapshot: Snapshot, plan: FoldPlan) -> Fold:
        key = (id(snapshot), plan)
        entry = self._entries.get(key)
        if entry is not None and entry[0] is snapshot:  # the snapshot itself is held: its id is not reused
            self._entries.move_to_end(key)
            return entry[1]
        if self.layout.size > self.max_positions:
            self.layout = FoldLayout()
            self._entries.clear()
        made = fold(snapshot, plan, self.layout)
        self._entries[key] = (snapshot, made)
        if len(self._entries) > self.limit:
            self._entries.popitem(last=False)
        return made

    def fold_together(self, snapshots: Sequence[Snapshot], plan: FoldPlan) -> list[Fold]:
        """The folds of ``snapshots``, all in one layout (so one can be subtracted from another)."""
        folds = [self.fold(snapshot, plan) for snapshot in snapshots]
        if all(made.layout is self.layout for made in folds):
            return folds
        # The layout started over midway (more groups than ``max_positions``): these, in one of their own.
        layout = FoldLayout()
        return [fold(snapshot, plan, layout) for snapshot in snapshots]
