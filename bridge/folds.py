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
Cell = tuple[str | None, str | None]
"""A series' values of a plan's ``cell_labels`` (its endpoint and its model)."""
Places = dict[Read, dict[str, int]]
HistogramPlaces = dict[Read, dict[tuple[str, bytes], tuple[np.ndarray, int]]]
CellPlaces = tuple[Places, HistogramPlaces]


MAX_SHAPES = 1024
"""The ``FoldShape``s (and ``CellsShape``s) a layout keeps, and the selections a ``CellsShape`` knows: a
selection's folds share one shape while its groups stay the same, and a hundred subscribers may select a
hundred ways. A source whose groups change between snapshots makes a new shape each time: bounded, at
the cost of indexes made again."""

MAX_INDEXES = 64
"""The ``SeriesIndex``es a ``FoldCache`` keeps of each kind (one per plan of every series, one per plan's
cells): a mapping makes a handful; more means plans nobody reuses, dropped all at once."""


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


_CELLS_KEYS: dict[tuple[Any, ...], int] = {}
"""``FoldPlan.cells_key``'s numbers: one per mapping's reads, a handful in a process."""


@dataclass(frozen=True, eq=False)
class FoldPlan:
    """What a fold sums: families read as numbers and as histograms, each with its grouping label, and
    which series the selection keeps. Compared by identity: one plan object per (mapping, selection)."""

    values: tuple[Read, ...]
    histograms: tuple[Read, ...]
    keep: Callable[[LabelKey], bool] | None
    """Whether the selection keeps a series; None: it keeps every series (and no call is made)."""
    cell_labels: tuple[str, str] | None = None
    """The labels ``keep`` reads (no other): a plan that keeps some series is then folded from the
    snapshot's ``CellFolds``, which every selection of the same reads shares."""

    def keeps(self, key: LabelKey) -> bool:
        return self.keep is None or self.keep(key)

    @functools.cached_property
    def cells_key(self) -> int:
        """What the ``CellFolds`` this plan is folded from depend on (the reads and the cells' labels), as
        a number: the same for every plan that shares them, and cheaper to hash than the reads, a few
        hundred times a tick."""
        return _CELLS_KEYS.setdefault((self.values, self.histograms, self.cell_labels), len(_CELLS_KEYS))

    @functools.cached_property
    def families(self) -> tuple[tuple[str, tuple[str | None, ...]], ...]:
        """Each family of ``values`` with the labels it is read by, in the order of ``values``."""
        by_family: dict[str, list[str | None]] = {}
        for name, label in self.values:
            by_family.setdefault(name, []).append(label)
        return tuple((name, tuple(grouped_by)) for name, grouped_by in by_family.items())


HistogramSignature = tuple[tuple[Read, tuple[tuple[str, bytes], ...]], ...]


def _places_key(
    groups: Places, histograms: HistogramPlaces
) -> tuple[tuple[tuple[Read, tuple[tuple[str, int], ...]], ...], HistogramSignature]:
    """What says two folds hold the same groups at the same places: each read's groups and positions,
    and each histogram read's (group, bucket layout) pairs (their places are the layout's), in order."""
    return (
        tuple((read, tuple(placed.items())) for read, placed in groups.items()),
        tuple((read, tuple(blocks)) for read, blocks in histograms.items()),
    )


def _write_block(into: np.ndarray, position: int, summed: HistogramSum) -> None:
    """A histogram group's sums at its place in a fold's vector (or a cell's row): the bucket counts,
    then the sum, then the count."""
    width = len(summed.bounds)
    into[position : position + width] = summed.counts
    into[position + width] = summed.total
    into[position + width + 1] = summed.count


class FoldLayout:
    """Where each sum lives in a fold's vector: a number takes one position, a histogram's group takes
    its bucket counts, then its sum, then its count. Positions are only added (groups appear as series
    do), so a fold made earlier is a prefix of the layout and reads 0 past its end."""

    def __init__(self) -> None:
        self._positions: dict[tuple[str, str | None, str, bytes | None], int] = {}
        self._blocks: dict[tuple[str, str | None, str, bytes], HistogramBlock] = {}
        self._shapes: dict[tuple[Any, ...], FoldShape] = {}
        self._cells_shapes: dict[tuple[Any, ...], CellsShape] = {}
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
        key = _places_key(groups, histograms)
        found = self._shapes.get(key)
        if found is None:
            if len(self._shapes) >= MAX_SHAPES:
                self._shapes.clear()
            found = self._shapes[key] = FoldShape(self, groups, histograms)
        return found

    def cells_shape(self, cells: dict[Cell, CellPlaces], representatives: list[LabelKey]) -> "CellsShape":
        """The one ``CellsShape`` of this layout whose cells hold these groups at these places."""
        key = tuple((cell, *_places_key(groups, histograms)) for cell, (groups, histograms) in cells.items())
        found = self._cells_shapes.get(key)
        if found is None:
            if len(self._cells_shapes) >= MAX_SHAPES:
                self._cells_shapes.clear()
            found = self._cells_shapes[key] = CellsShape(self, tuple(cells.values()), tuple(representatives))
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
    def signature(self) -> HistogramSignature:
        """Each histogram read's (group, bucket layout) pairs, in order."""
        return _places_key({}, self.histograms)[1]


@dataclass(eq=False)
class Fold:
    """The selected series of one snapshot summed per group, at the positions of ``layout``."""

    layout: FoldLayout
    vector: np.ndarray
    shape: FoldShape

    @functools.cached_property
    def numbers(self) -> tuple[float, ...]:
        """``vector`` as Python floats: what a window computed alone reads, a number at a time (made when
        one first does: windows computed together read the vector). A tuple, not a list: the cache keeps
        hundreds of folds of thousands of numbers, and the garbage collector stops walking a tuple of
        floats once it has seen it, where it walks every item of a list on every full collection
        (measured with the cache full: 1.5 ms a full collection with lists, 0.95 ms with tuples)."""
        return tuple(self.vector.tolist())

    @property
    def groups(self) -> dict[Read, dict[str, int]]:
        """For each read, the groups this snapshot has (in the order its series, or its cells, met them) and
        their positions."""
        return self.shape.groups

    @property
    def histograms(self) -> dict[Read, dict[tuple[str, bytes], tuple[np.ndarray, int]]]:
        """For each read, each (group, bucket layout) this snapshot has: its bounds and the block's position."""
        return self.shape.histograms

    def number(self, position: int) -> float:
        numbers = self.numbers
        return numbers[position] if position < len(numbers) else 0.0

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
        _write_block(vector, position, summed)
    return Fold(layout, vector, layout.shape(groups, histograms))


class CellsShape:
    """Which groups each cell of a snapshot's ``CellFolds`` holds and where (as ``Fold.groups`` and
    ``Fold.histograms`` do), with a series of each cell. Shared by the cell folds of successive
    snapshots (``FoldLayout.cells_shape``), with what each selection keeps of them, found once, and the
    shape of the folds summed from them."""

    def __init__(
        self, layout: "FoldLayout", places: tuple[CellPlaces, ...], representatives: tuple[LabelKey, ...]
    ) -> None:
        self.layout, self.places, self.representatives = layout, places, representatives
        self._kept: dict[FoldPlan, list[int]] = {}
        self._masks: dict[tuple[FoldPlan, ...], np.ndarray] = {}
        self._shape: FoldShape | None = None

    def kept(self, plan: FoldPlan) -> list[int]:
        """The rows of the cells ``plan`` keeps (its ``keep`` reads only the cells' labels, so a series
        of each cell answers for all of them)."""
        found = self._kept.get(plan)
        if found is None:
            if len(self._kept) >= MAX_SHAPES:
                self._kept.clear()
            found = self._kept[plan] = [row for row, key in enumerate(self.representatives) if plan.keeps(key)]
        return found

    def masks(self, plans: tuple[FoldPlan, ...]) -> np.ndarray:
        """``kept`` of each of ``plans`` as a row of booleans, one per cell (``select_many``'s): made
        once for the plans of a tick's windows, which are those of the tick before."""
        found = self._masks.get(plans)
        if found is None:
            if len(self._masks) >= MAX_SHAPES:
                self._masks.clear()
            found = self._masks[plans] = np.zeros((len(plans), len(self.representatives)), dtype=bool)
            for row, plan in zip(found, plans, strict=True):
                row[self.kept(plan)] = True
        return found

    def shape(self, plan: FoldPlan) -> FoldShape:
        """The shape of every fold summed from these cells, whichever cells it keeps: every group of every
        cell, cell by cell in order, those of cells a selection drops reading 0. So the folds of one
        snapshot for different selections share a shape, and windows of different selections that end
        at one snapshot are computed together (``bridge.categories.WindowSet``). A group reading 0 in a
        window shows in no figure: a map lists the groups with something in the window, and a total
        or a rate adds nothing."""
        if self._shape is None:
            groups: Places = {read: {} for read in plan.values}
            histograms: HistogramPlaces = {read: {} for read in plan.histograms}
            for cell_groups, cell_histograms in self.places:
                for read, placed in cell_groups.items():
                    groups[read].update(placed)
                for read, blocks in cell_histograms.items():
                    histograms[read].update(blocks)
            self._shape = self.layout.shape(groups, histograms)
        return self._shape


@dataclass(eq=False)
class CellFolds:
    """A snapshot's series summed per group within each cell (a pair of endpoint and model), a row of
    ``matrix`` per cell at the layout's places. Summing is linear: the fold of any selection of endpoints
    and models is the sum of the rows of the cells it keeps (``select``), one array operation, where
    folding the snapshot again would take a pass over its thousands of series per selection."""

    layout: FoldLayout
    matrix: np.ndarray
    shape: CellsShape

    @functools.cached_property
    def others(self) -> np.ndarray:
        """The columns that are not counts: those where some cell holds a number that is not a whole one
        of +0 or more (-0.0 included: its sign would hang on the order), or whose cells add up past 2**53
        (beyond which whole numbers are not all exact)."""
        matrix = self.matrix
        counts = (~np.signbit(matrix)).all(axis=0) & (matrix == np.floor(matrix)).all(axis=0)
        counts &= matrix.sum(axis=0) < 2.0**53
        return np.flatnonzero(~counts)


@dataclass(eq=False)
class SeriesIndex:
    """Where each number of a snapshot's series lands in its sums (a ``Fold``'s vector, or the matrix of
    ``CellFolds``, a row per cell), for every snapshot whose series are those of the one it was made from
    (the same keys in the same order, histograms with the same bounds): summing such a snapshot is one
    ``np.bincount`` of its numbers, in the order the series come, as ``fold`` and ``fold_cells`` add them
    (so the sums are the same to the last bit), without a pass over the series in Python, and with the
    shape of the last. Successive snapshots of a server nearly always have the same series."""

    layout: FoldLayout
    values: tuple[tuple[str, tuple[LabelKey, ...], int], ...]
    """Each family read as numbers: its keys, and how many of the plan's reads group it (a slot each)."""
    histograms: tuple[tuple[str, tuple[LabelKey, ...], tuple[np.ndarray, ...]], ...]
    """Each histogram read: its family's keys and their bounds (the same objects: interned)."""
    rows: np.ndarray
    positions: np.ndarray
    """Each number's row (its cell; 0 in a fold) and place, numbers in order: each family's series, a slot
    per read grouping it; then each histogram read's series, a block of bucket counts, sum and count each."""
    height: int
    """The rows of the sums: the cells, or 1."""
    shape: Any
    """The sums' ``CellsShape`` or ``FoldShape``."""

    def fits(self, snapshot: Snapshot, layout: FoldLayout) -> bool:
        if layout is not self.layout:
            return False
        for name, keys, _ in self.values:
            if tuple(snapshot.values.get(name, ())) != keys:
                return False
        for name, keys, bounds in self.histograms:
            if tuple(snapshot.histograms.get(name, ())) != keys:
                return False
            found = snapshot.bounds.get(name, {})
            if any(found[key] is not made for key, made in zip(keys, bounds, strict=True)):
                return False
        return True

    def sums(self, snapshot: Snapshot) -> np.ndarray:
        """The sums of ``snapshot``, which ``fits``: a row per cell, a column per place of the layout."""
        numbers: list[np.ndarray] = []
        for name, keys, reads in self.values:
            found = np.fromiter(snapshot.values[name].values(), float, len(keys)) if keys else np.zeros(0)
            numbers.append(np.repeat(found, reads) if reads > 1 else found)
        for name, keys, _ in self.histograms:
            if keys:
                numbers.append(np.concatenate(list(snapshot.histograms[name].values())))
        width = self.layout.size
        weights = np.concatenate(numbers) if numbers else np.zeros(0)
        summed = np.bincount(self.rows * width + self.positions, weights, minlength=self.height * width)
        return summed.reshape(self.height, width)


def index_series(
    snapshot: Snapshot,
    plan: FoldPlan,
    layout: FoldLayout,
    shape: "CellsShape | FoldShape",
    row_of: Callable[[dict[str, str]], int],
    place: Callable[[int, Read, Any], int],
) -> SeriesIndex:
    """The ``SeriesIndex`` of sums just made of ``snapshot`` for ``plan`` (every series it has): each
    series' row is ``row_of`` its labels, and a group's place in a row is ``place(row, read, group)`` (a
    histogram's group: with its bucket layout)."""
    rows: list[int] = []
    positions: list[int] = []
    values = []
    for name, grouped_by in plan.families:
        series = snapshot.values.get(name, {})
        for key in series:
            found = labels(key)
            row = row_of(found)
            for label in grouped_by:
                rows.append(row)
                positions.append(place(row, (name, label), found.get(label, "") if label else ""))
        values.append((name, tuple(series), len(grouped_by)))
    histograms = []
    for read in plan.histograms:
        name, label = read
        series_bounds = snapshot.bounds.get(name, {})
        keys = tuple(snapshot.histograms.get(name, {}))
        for key in keys:
            found = labels(key)
            row = row_of(found)
            bounds = series_bounds[key]
            position = place(row, read, (found.get(label, "") if label else "", bounds.tobytes()))
            rows.extend([row] * (len(bounds) + 2))
            positions.extend(range(position, position + len(bounds) + 2))
        histograms.append((name, keys, tuple(series_bounds[key] for key in keys)))
    height = len(shape.representatives) if isinstance(shape, CellsShape) else 1
    return SeriesIndex(
        layout, tuple(values), tuple(histograms), np.array(rows, np.intp), np.array(positions, np.intp), height, shape
    )


def index_cells(snapshot: Snapshot, plan: FoldPlan, made: "CellFolds") -> SeriesIndex:
    """The ``SeriesIndex`` of ``made``, the ``CellFolds`` ``fold_cells`` made of ``snapshot`` for ``plan``."""
    assert plan.cell_labels is not None
    endpoint_label, model_label = plan.cell_labels
    cells = {
        (labels(key).get(endpoint_label), labels(key).get(model_label)): row
        for row, key in enumerate(made.shape.representatives)
    }
    places = made.shape.places

    def place(row: int, read: Read, group: Any) -> int:
        return places[row][0][read][group] if isinstance(group, str) else places[row][1][read][group][1]

    return index_series(
        snapshot,
        plan,
        made.layout,
        made.shape,
        lambda found: cells[(found.get(endpoint_label), found.get(model_label))],
        place,
    )


def index_fold(snapshot: Snapshot, plan: FoldPlan, made: Fold) -> SeriesIndex:
    """The ``SeriesIndex`` of ``made``, the ``Fold`` ``fold`` made of ``snapshot`` for ``plan`` (which
    keeps every series)."""
    assert plan.keep is None

    def place(_: int, read: Read, group: Any) -> int:
        return made.groups[read][group] if isinstance(group, str) else made.histograms[read][group][1]

    return index_series(snapshot, plan, made.layout, made.shape, lambda _: 0, place)


def fold_cells(snapshot: Snapshot, plan: FoldPlan, layout: FoldLayout) -> CellFolds:
    """The ``CellFolds`` of ``snapshot``: every series (whatever ``plan`` keeps) summed per group of
    each read of ``plan`` within its cell, the cells in the order the series meet them."""
    assert plan.cell_labels is not None
    endpoint_label, model_label = plan.cell_labels
    rows: dict[Cell, int] = {}
    representatives: list[LabelKey] = []
    sums: dict[tuple[int, Read], dict[str, float]] = {}  # only the reads a cell has series of
    histogram_sums: dict[tuple[int, Read], dict[tuple[str, bytes], HistogramSum]] = {}

    def row_of(key: LabelKey, found: dict[str, str]) -> int:
        cell = (found.get(endpoint_label), found.get(model_label))
        row = rows.get(cell)
        if row is None:
            row = rows[cell] = len(representatives)
            representatives.append(key)
        return row

    for name, grouped_by in plan.families:
        for key, value in snapshot.values.get(name, {}).items():
            found = labels(key)
            row = row_of(key, found)
            for label in grouped_by:
                into = sums.get((row, (name, label)))
                if into is None:
                    into = sums[(row, (name, label))] = {}
                group = found.get(label, "") if label else ""
                into[group] = into.get(group, 0.0) + value
    for read in plan.histograms:
        name, label = read
        for key, bounds, cumulative, total, count in snapshot.histogram_series(name):
            found = labels(key)
            into_read = histogram_sums.setdefault((row_of(key, found), read), {})
            grouped = (found.get(label, "") if label else "", bounds.tobytes())
            add_histogram(into_read, grouped, bounds, cumulative, total, count)
    places: list[CellPlaces] = [({}, {}) for _ in rows]
    at_rows: list[int] = []
    positions: list[int] = []
    values: list[float] = []
    for (row, read), group_sums in sums.items():
        name, label = read
        placed = places[row][0][read] = {group: layout.position((name, label, group, None), 1) for group in group_sums}
        at_rows.extend([row] * len(placed))
        positions.extend(placed.values())
        values.extend(group_sums.values())
    blocks: list[tuple[int, int, HistogramSum]] = []
    for (row, read), summed_groups in histogram_sums.items():
        placed_blocks = places[row][1][read] = {}
        for (group, bucket_layout), summed in summed_groups.items():
            block_key, where = layout.block(read, group, bucket_layout, summed.bounds)
            placed_blocks[block_key] = where  # the layout's own tuples, never new ones
            blocks.append((row, where[1], summed))
    matrix = np.zeros((len(rows), layout.size))
    matrix[at_rows, positions] = values
    for row, position, summed in blocks:
        _write_block(matrix[row], position, summed)
    return CellFolds(layout, matrix, layout.cells_shape(dict(zip(rows, places, strict=True)), representatives))


def select(cells: CellFolds, plan: FoldPlan) -> Fold:
    """The fold of the series ``plan`` keeps: the sum of the rows of the cells it keeps, added one by one
    in the cells' order onto zeros, as ``select_many`` adds them (so both give the same last bits)."""
    vector = np.zeros(cells.matrix.shape[1])
    for row in cells.shape.kept(plan):
        vector += cells.matrix[row]
    return Fold(cells.layout, vector, cells.shape.shape(plan))


def select_many(cells: CellFolds, plans: Sequence[FoldPlan]) -> np.ndarray:
    """The folds of the series each of ``plans`` keeps, a row each: what ``select`` gives for each, to the
    last bit, for a hundred selections' windows that end at one snapshot, every tick, without a fold per
    plan. Counts (every column but ``CellFolds.others``) are summed by one matrix product: whole numbers
    add up exactly in any order. The others (sums of seconds, fractions) are added cell by cell in
    ``select``'s order."""
    kept = cells.shape.masks(tuple(plans))
    with np.errstate(invalid="ignore"):  # inf * 0 in a column that is not counts: written again below
        folds: np.ndarray = kept @ cells.matrix  # booleans as 0 and 1
    others = cells.others
    if len(others):
        summed = np.zeros((len(plans), len(others)))
        rows = cells.matrix[:, others]
        # A row of zeros adds nothing: a sum begun at +0.0 is never -0.0 (in IEEE arithmetic x + -x is
        # +0.0), and to any other number +0.0 and -0.0 add nothing.
        for cell in np.flatnonzero(rows.any(axis=1)).tolist():
            np.add(summed, rows[cell], out=summed, where=kept[:, cell : cell + 1])
        folds[:, others] = summed
    return folds


CELLS_BYTES = 16 * 1024 * 1024
"""The most the ``CellFolds`` a ``FoldCache`` keeps may hold, least recently used dropped first. A default
server's are 9 cells of 253 places, 18 KiB a snapshot: the ring's last two minutes fit many times over,
so a selection's fold of a window's start, dropped from the cache of folds by a hundred other selections'
since, is summed again from its cells instead of from the snapshot's series."""


FOLDS_BYTES = 32 * 1024 * 1024
"""The most a ``FoldCache``'s folds may hold, each counted as its vector and its numbers' tuple (five
times the vector, made or not)."""


def _fold_bytes(made: Fold) -> int:
    return 5 * made.vector.nbytes


class FoldCache:
    """The folds of recently used (snapshot, plan) pairs, least recently used dropped first, in one
    layout, and the ``CellFolds`` that selections are folded from. A default server's stream reads 253
    positions (a fold's vector 2 KiB, its numbers' tuple about 8 KiB): a hundred selections with windows
    of ten seconds keep some 1,100 folds in use. Memory is bounded by ``limit`` folds and ``FOLDS_BYTES``,
    folds of at most ``max_positions`` numbers (and one snapshot's worth), and ``CELLS_BYTES`` of cells: a
    source whose groups outgrow it starts a new layout, and its folds are made again."""

    def __init__(self, limit: int = 2048, max_positions: int = 16384) -> None:
        self.limit = limit
        self.max_positions = max_positions
        self._bytes = 0
        self.layout = FoldLayout()
        self._entries: OrderedDict[tuple[int, FoldPlan], tuple[Snapshot, Fold]] = OrderedDict()
        self._cells: OrderedDict[tuple[int, int], tuple[Snapshot, CellFolds]] = OrderedDict()
        self._cells_bytes = 0
        self._cells_indexes: dict[int, SeriesIndex] = {}
        """The last ``SeriesIndex`` of the cells of each plan's reads (a handful: a mapping's)."""
        self._fold_indexes: dict[FoldPlan, SeriesIndex] = {}
        """The last ``SeriesIndex`` of each plan that keeps every series (one per mapping)."""

    def __len__(self) -> int:
        return len(self._entries)

    def fold(self, snapshot: Snapshot, plan: FoldPlan) -> Fold:
        key = (id(snapshot), plan)
        entry = self._entries.get(key)
        if entry is not None and entry[0] is snapshot:  # the snapshot itself is held: its id is not reused
            self._entries.move_to_end(key)
            return entry[1]
        self._start_over_if_full()
        if plan.keep is None:
            made = self._fold_every_series(snapshot, plan)
        elif plan.cell_labels is None:
            made = fold(snapshot, plan, self.layout)
        else:  # a selection: from the cells every selection of these reads shares
            made = select(self._fold_cells(snapshot, plan), plan)
        if entry is not None:  # another snapshot's, which had this one's id
            self._bytes -= _fold_bytes(entry[1])
        self._entries[key] = (snapshot, made)
        self._bytes += _fold_bytes(made)
        while len(self._entries) > 1 and (len(self._entries) > self.limit or self._bytes > FOLDS_BYTES):
            self._bytes -= _fold_bytes(self._entries.popitem(last=False)[1][1])
        return made

    def _fold_every_series(self, snapshot: Snapshot, plan: FoldPlan) -> Fold:
        index = self._fold_indexes.get(plan)
        if index is not None and index.fits(snapshot, self.layout):
            return Fold(self.layout, index.sums(snapshot)[0], index.shape)
        made = fold(snapshot, plan, self.layout)  # series came or went: summed one by one, and indexed
        if len(self._fold_indexes) >= MAX_INDEXES:
            self._fold_indexes.clear()
        self._fold_indexes[plan] = index_fold(snapshot, plan, made)
        return made

    def _start_over_if_full(self) -> None:
        if self.layout.size > self.max_positions:
            self.layout = FoldLayout()
            self._entries.clear()
            self._cells.clear()
            self._cells_indexes.clear()
            self._fold_indexes.clear()
            self._bytes = self._cells_bytes = 0

    def cells(self, snapshot: Snapshot, plan: FoldPlan) -> CellFolds:
        """The ``CellFolds`` of ``snapshot`` for ``plan``'s reads, found or made, in the cache's layout."""
        self._start_over_if_full()
        return self._fold_cells(snapshot, plan)

    def select_together(
        self, starts: Sequence[Snapshot], end: Snapshot, plans: Sequence[FoldPlan]
    ) -> tuple[Fold, np.ndarray, np.ndarray]:
        """For windows from each of ``starts`` to ``end``, each over the series of its own plan (plans that
        select from cells): each window's end fold and start fold, as the rows of two matrices in one
        layout, and the end's fold of the first plan (whose shape every end fold shares). Summed from the
        snapshots' cells (``select_many``), a matrix per snapshot, without a ``Fold`` or a lookup per
        window; the same numbers as ``fold`` gives each."""
        if any(plan.keep is None or plan.cell_labels is None for plan in plans):
            raise ValueError("windows of several selections are a set where their ends' folds share a shape")
        self._start_over_if_full()  # once: every fold below is then made in one layout
        end_cells = self._fold_cells(end, plans[0])
        ends = select_many(end_cells, plans)
        width = ends.shape[1]
        begins = np.zeros_like(ends)
        windows_from: dict[int, list[int]] = {}  # by the start snapshot's id: the windows that begin there
        for at, start in enumerate(starts):
            windows_from.setdefault(id(start), []).append(at)
        for rows in windows_from.values():
            summed = select_many(self._fold_cells(starts[rows[0]], plans[0]), [plans[at] for at in rows])
            begins[rows, : summed.shape[1]] = summed[:, :width]  # made before the layout grew: 0 past its end
        return Fold(self.layout, ends[0], end_cells.shape.shape(plans[0])), ends, begins

    def _fold_cells(self, snapshot: Snapshot, plan: FoldPlan) -> CellFolds:
        key = (id(snapshot), plan.cells_key)
        entry = self._cells.get(key)
        if entry is not None and entry[0] is snapshot:
            self._cells.move_to_end(key)
            return entry[1]
        if entry is not None:  # another snapshot's, which had this one's id
            self._cells_bytes -= entry[1].matrix.nbytes
        index = self._cells_indexes.get(plan.cells_key)
        if index is not None and index.fits(snapshot, self.layout):
            made = CellFolds(self.layout, index.sums(snapshot), index.shape)
        else:  # series came or went: summed one by one, and indexed for the snapshots after
            made = fold_cells(snapshot, plan, self.layout)
            if len(self._cells_indexes) >= MAX_INDEXES:
                self._cells_indexes.clear()
            self._cells_indexes[plan.cells_key] = index_cells(snapshot, plan, made)
        self._cells[key] = (snapshot, made)
        self._cells_bytes += made.matrix.nbytes
        while self._cells_bytes > CELLS_BYTES and len(self._cells) > 1:
            self._cells_bytes -= self._cells.popitem(last=False)[1][1].matrix.nbytes
        return made

    def fold_together(self, snapshots: Sequence[Snapshot], plan: FoldPlan) -> list[Fold]:
        """The folds of ``snapshots``, all in one layout (so one can be subtracted from another)."""
        folds = [self.fold(snapshot, plan) for snapshot in snapshots]
        if all(made.layout is self.layout for made in folds):
            return folds
        # The layout started over midway (more groups than ``max_positions``): these, in one of their own.
        layout = FoldLayout()
        return [fold(snapshot, plan, layout) for snapshot in snapshots]
