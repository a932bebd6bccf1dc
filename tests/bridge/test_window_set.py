"""Windows that share an end, computed together, give each window's own figures, byte for byte."""

import dataclasses
import itertools
import json
import math

import numpy as np
import pytest

import bridge.folds
from bridge.categories import (
    METRIC_TYPES,
    Mapping,
    Selection,
    Window,
    WindowSet,
    compute,
    compute_figures,
    compute_many,
    fold_plan,
    histogram_table,
)
from bridge.figures import (
    DELTAS_TOGETHER_FROM,
    ColumnFigures,
    FigureObject,
    deltas_texts,
    dumps_figures,
    join_entries,
    round_figure,
    round_figures,
)
from bridge.folds import MAX_SHAPES, FoldCache, FoldLayout, fold
from bridge.snapshot import Snapshot, histogram

MAPPING = Mapping(
    requests="req",
    responses="resp",
    completion_tokens="out",
    prompt_tokens="in",
    errors="err",
    request_latency="latency",
    queue_time="queue",
    ttft="ttft",
    itl="itl",
    time_per_output_token="tpot",
    cache_lookups="lookups",
    cache_lookup_hits="lookup_hits",
    cache_queries="queries",
    cache_hits="hits",
    waiting="waiting",
    running="running",
    active_streams="open",
    streams="streams",
    lost_requests="lost",
)
COUNTERS = [name for role in Mapping.COUNTERS if (name := getattr(MAPPING, role)) is not None]
GAUGES = [getattr(MAPPING, role) for role in Mapping.GAUGES]
HISTOGRAMS = [getattr(MAPPING, role) for role in Mapping.HISTOGRAMS]
BOUNDS = np.array([0.0, 0.005, 0.05, 0.5, 5.0, math.inf])
FROM_ZERO = dict.fromkeys(HISTOGRAMS, BOUNDS)
"""A first bucket at 0: a layout padding would change, so each group is summarized on its own."""
ABOVE_ZERO = {
    name: np.array([*bounds, math.inf])
    for name, bounds in zip(
        HISTOGRAMS,
        ([0.001, 0.01, 0.1, 1.0, 10.0], [0.02, 0.2], [0.005, 0.05, 0.5, 5.0], [0.25], [0.01, 0.1, 1.0]),
        strict=True,
    )
}
"""Layouts of different widths whose first bound is above 0, as a server's are: padded and summarized
together (``bridge.categories.HistogramTable``)."""
ENDPOINTS, MODELS = ("/a", "/b", "/c"), ("m1", "m2")
EVERYTHING = frozenset(METRIC_TYPES)


def key(endpoint: str, model: str, **extra: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"endpoint": endpoint, "model": model, **extra}.items()))


def history(seed: int, length: int = 24, bounds: dict[str, np.ndarray] = FROM_ZERO) -> list[Snapshot]:
    """Snapshots a second apart of one epoch: counters and histograms only grow, by whole and by
    fractional steps (float noise), and series appear along the way (new groups in later windows)."""
    rng = np.random.default_rng(seed)
    values: dict[str, dict] = {name: {} for name in COUNTERS + GAUGES}
    histograms: dict[str, dict] = {name: {} for name in HISTOGRAMS}
    snapshots = []
    for t in range(length):
        for endpoint in ENDPOINTS:
            for model in MODELS:
                if rng.random() < 0.25:
                    continue  # this series is quiet this second (or not born yet)
                series = key(endpoint, model)
                for name in COUNTERS:
                    labelled = series
                    if name == "err":
                        labelled = key(endpoint, model, status=str(rng.choice(["429", "500", "503"])))
                    elif name == "streams":
                        labelled = key(endpoint, model, outcome=str(rng.choice(["completed", "failed", "cancelled"])))
                    step = float(rng.integers(0, 40)) if rng.random() < 0.7 else float(rng.integers(0, 5)) * 0.1
                    values[name][labelled] = values[name].get(labelled, 0.0) + step
                for name in GAUGES:
                    values[name][series] = float(rng.integers(0, 9))
                for name in HISTOGRAMS:
                    before = histograms[name].get(series)
                    added = np.cumsum(rng.integers(0, 6, size=len(bounds[name]))).astype(float)
                    spent = float(rng.random() * added[-1])
                    if before is None:
                        histograms[name][series] = histogram(added, spent, float(added[-1]))
                    else:  # the cumulative counts, the sum and the count, each grown
                        histograms[name][series] = before + np.array([*added, spent, added[-1]])
        snapshots.append(
            Snapshot(
                float(t),
                {name: dict(series) for name, series in values.items()},
                {name: dict(series) for name, series in histograms.items()},
                {name: dict.fromkeys(series, bounds[name]) for name, series in histograms.items()},
            )
        )
    return snapshots


SELECTIONS = (
    Selection(),
    Selection(models=frozenset({"m1"})),
    Selection(endpoints=frozenset({"/a", "/c"}), models=frozenset({"m2"})),
    Selection(endpoints=frozenset({"/nowhere"})),
)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("selection", SELECTIONS)
@pytest.mark.parametrize("bounds", [FROM_ZERO, ABOVE_ZERO], ids=["from-zero", "above-zero"])
def test_each_window_of_a_set_has_exactly_its_own_figures(seed, selection, bounds):
    snapshots = history(seed, bounds=bounds)
    end = snapshots[-1]
    # The oldest start, the end itself (an empty window), and everything between, in no order.
    starts = [snapshots[i] for i in np.random.default_rng(seed).permutation(len(snapshots))[:12]]
    starts += [snapshots[0], end]
    types = EVERYTHING if seed % 3 else frozenset({"latency", "cache", "error"})
    figures = compute_figures(WindowSet(starts, end, MAPPING, selection, FoldCache()), types)
    together = figures.rows()
    alone = [compute(Window(start, end, MAPPING, selection, FoldCache()), types) for start in starts]
    assert together == alone
    # What clients receive: the same text, keys in the same order, written from the columns.
    assert figures.texts() == [dumps_figures(data) for data in alone]
    assert figures.column("error", "total_errors_per_sec") == [data["error"]["total_errors_per_sec"] for data in alone]
    assert any(data["error"]["total_errors_per_sec"] > 0 for data in together) or selection.endpoints == {"/nowhere"}


def test_a_set_shares_the_fold_cache_with_windows_computed_alone():
    snapshots = history(7)
    cache = FoldCache()
    end = snapshots[-1]
    alone = compute(Window(snapshots[3], end, MAPPING, Selection(), cache), EVERYTHING)
    folds = len(cache)
    together = compute_many(WindowSet(snapshots[3:6], end, MAPPING, Selection(), cache), EVERYTHING)
    assert together[0] == alone
    assert len(cache) == folds + 2  # two more starts folded; the end's and the first start's reused


@pytest.mark.parametrize("bounds", [FROM_ZERO, ABOVE_ZERO], ids=["from-zero", "above-zero"])
def test_a_windows_categories_joined_from_the_entries_are_the_text_of_those_categories_alone(bounds):
    snapshots = history(11, bounds=bounds)
    end, starts = snapshots[-1], snapshots[:6]
    entries = compute_figures(WindowSet(starts, end, MAPPING, Selection(), FoldCache()), EVERYTHING).entry_texts()
    assert list(entries) == list(METRIC_TYPES)
    for size in (1, 2, 5):
        for kind in itertools.islice(itertools.combinations(METRIC_TYPES, size), 4):
            for row, start in enumerate(starts):
                alone = compute(Window(start, end, MAPPING, Selection(), FoldCache()), frozenset(kind))
                joined = join_entries({category: texts[row] for category, texts in entries.items() if category in kind})
                assert joined == dumps_figures(alone)


def test_folds_share_a_shape_exactly_when_they_hold_the_same_groups_at_the_same_places():
    cache = FoldCache()
    plan = fold_plan(MAPPING, Selection())
    folds = [cache.fold(snapshot, plan) for snapshot in history(3)]

    def places(fold):
        return (
            [(read, list(placed.items())) for read, placed in fold.groups.items()],
            [(read, list(blocks)) for read, blocks in fold.histograms.items()],
        )

    for before, after in itertools.pairwise(folds):
        assert (before.shape is after.shape) == (places(before) == places(after))
    shapes = {id(fold.shape) for fold in folds}
    assert 1 < len(shapes) < len(folds)  # series appear early on, then every fold of the epoch shares one


class SeriesByFold(FoldCache):
    """Folds every plan from the snapshot's series, one by one, as plans without cells are."""

    def fold(self, snapshot, plan):
        return super().fold(snapshot, dataclasses.replace(plan, cell_labels=None))


@pytest.mark.parametrize("selection", SELECTIONS[1:])
def test_a_selections_fold_summed_from_the_cells_is_the_fold_of_its_series(selection):
    plan = fold_plan(MAPPING, selection)
    cache = FoldCache()
    snapshots = history(5)
    for snapshot in snapshots[::6]:
        summed = cache.fold(snapshot, plan)  # a selection: the sum of the cells it keeps
        direct = fold(snapshot, plan, cache.layout)  # its series summed one by one
        width = len(direct.vector)
        for read, placed in summed.groups.items():  # every group of every cell: 0 in those dropped
            for group, position in placed.items():
                if group not in direct.groups[read]:
                    assert summed.vector[position] == 0.0
                else:
                    assert direct.groups[read][group] == position
        for read, blocks in direct.histograms.items():
            assert blocks.keys() <= summed.histograms[read].keys()
        # The same numbers; sums of fractions in another order may differ in their last bits.
        np.testing.assert_allclose(summed.vector[:width], direct.vector, rtol=1e-12, atol=0)
        assert not summed.vector[width:].any()
    # And the same figures as the selection's series folded one by one, every category.
    for start in snapshots[6:20:4]:
        end = snapshots[-1]
        assert compute(Window(start, end, MAPPING, selection, cache), EVERYTHING) == compute(
            Window(start, end, MAPPING, selection, SeriesByFold()), EVERYTHING
        )


@pytest.mark.parametrize("bounds", [FROM_ZERO, ABOVE_ZERO], ids=["from-zero", "above-zero"])
def test_a_snapshot_with_the_series_of_the_last_is_summed_by_its_index_to_the_last_bit(monkeypatch, bounds):
    snapshots = history(3, length=30, bounds=bounds)
    # A series gone, and another one back, late in the history: the index is made again, twice; and
    # a histogram series whose buckets change (the same keys, other bounds): again.
    for snapshot in snapshots[25:27]:
        for series in snapshot.values.values():
            series.pop(key("/b", "m2"), None)
    wider = np.array([0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, math.inf])
    for snapshot in snapshots[28:]:
        changed = next(iter(snapshot.histograms["latency"]))
        snapshot.bounds["latency"] = {**snapshot.bounds["latency"], changed: wider}
        snapshot.histograms["latency"][changed] = histogram(np.arange(1.0, 9.0), 7.5, 8.0)
    plan, every = fold_plan(MAPPING, SELECTIONS[1]), fold_plan(MAPPING, Selection())
    made, folded = [], []
    cells = bridge.folds.fold_cells
    monkeypatch.setattr(bridge.folds, "fold_cells", lambda *args: made.append(args[0]) or cells(*args))
    monkeypatch.setattr(bridge.folds, "fold", lambda *args: folded.append(args[0]) or fold(*args))
    cache = FoldCache()
    for snapshot in snapshots:
        summed = cache.cells(snapshot, plan)
        direct = cells(snapshot, plan, cache.layout)  # one by one, as every snapshot was before indexes
        assert summed.matrix.tobytes() == direct.matrix.tobytes()
        assert summed.shape is direct.shape
        summed_fold, direct_fold = cache.fold(snapshot, every), fold(snapshot, every, cache.layout)
        assert summed_fold.vector.tobytes() == direct_fold.vector.tobytes()
        assert summed_fold.shape is direct_fold.shape
    for passes in (made, folded):
        assert 4 <= len(passes) < 15  # series appear early on, then go and come back; indexed in between
        assert all(snapshots[at] in passes for at in (25, 27, 28)) and snapshots[-1] not in passes


def test_many_selections_summed_at_once_are_each_what_select_gives_to_the_last_bit():
    snapshot = history(9)[-1]
    plans = [fold_plan(MAPPING, selection) for selection in SELECTIONS[1:] * 3]
    cells = FoldCache().cells(snapshot, plans[0])
    assert len(cells.matrix) == 6 and len(cells.others) > 0  # every cell; sums of seconds, gauges
    # Numbers whose sum hangs on the order (fractions of every size), and some that a product with 0
    # does not leave 0 (inf, nan), or that a sum could leave -0.0, past the counts' columns.
    rng = np.random.default_rng(9)
    columns = rng.choice(cells.matrix.shape[1], size=40, replace=False)
    odd = [0.1, 1e16, 3.3e-7, -2.5, math.inf, math.nan, -0.0, 2.0**52 + 1]
    cells.matrix[:, columns] = rng.choice(odd, size=(len(cells.matrix), len(columns)))
    cells.matrix[2, columns] = -0.0  # a cell of zeros (of either sign) adds nothing: left out
    cells.matrix[4, columns] = 0.0
    del cells.others  # the cached columns: read again from the matrix just written
    many = bridge.folds.select_many(cells, plans)
    for row, plan in zip(many, plans, strict=True):
        one = bridge.folds.select(cells, plan).vector
        assert row.tobytes() == one.tobytes()  # bit for bit: -0.0 is not 0.0, nan is nan
    assert np.isnan(many[:, columns]).any() and not np.isnan(many).all(axis=0).any()


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("bounds", [FROM_ZERO, ABOVE_ZERO], ids=["from-zero", "above-zero"])
def test_windows_of_different_selections_computed_together_each_have_their_own_figures(seed, bounds):
    snapshots = history(20 + seed, bounds=bounds)
    end = snapshots[-1]
    rows = [(start, selection) for start in snapshots[2:20:5] for selection in SELECTIONS[1:]]
    cache = FoldCache()
    windows = WindowSet(
        [start for start, _ in rows], end, MAPPING, Selection(), cache, selections=[selection for _, selection in rows]
    )
    figures = compute_figures(windows, EVERYTHING)
    alone = [compute(Window(start, end, MAPPING, selection, FoldCache()), EVERYTHING) for start, selection in rows]
    assert figures.rows() == alone
    assert figures.texts() == [dumps_figures(data) for data in alone]
    assert len({json.dumps(data, sort_keys=True) for data in alone}) > len(rows) // 2  # the windows differ


def test_windows_of_selections_whose_ends_differ_in_shape_are_not_a_set():
    snapshots = history(3)
    with pytest.raises(ValueError, match="share a shape"):  # every series: folded directly, a shape of its own
        WindowSet(snapshots[:2], snapshots[-1], MAPPING, Selection(), FoldCache(), selections=SELECTIONS[:2])


def test_every_selection_of_a_snapshot_is_summed_from_one_pass_over_its_series(monkeypatch):
    passes = []
    cells, indexed = bridge.folds.fold_cells, bridge.folds.SeriesIndex.sums
    monkeypatch.setattr(bridge.folds, "fold_cells", lambda *args: passes.append(args[0]) or cells(*args))

    def sums(index, snapshot):
        if isinstance(index.shape, bridge.folds.CellsShape):  # not the fold of every series
            passes.append(snapshot)
        return indexed(index, snapshot)

    monkeypatch.setattr(bridge.folds.SeriesIndex, "sums", sums)
    snapshots = history(6)
    cache = FoldCache()
    for snapshot in snapshots[-3:]:
        for selection in SELECTIONS[1:]:
            cache.fold(snapshot, fold_plan(MAPPING, selection))
        cache.fold(snapshot, fold_plan(MAPPING, Selection()))  # every series: summed directly
    assert passes == snapshots[-3:]
    # The shapes of the later folds are those of the first (nothing new appeared): looked up, not made.
    folds = [cache.fold(snapshot, fold_plan(MAPPING, SELECTIONS[1])) for snapshot in snapshots[-2:]]
    assert folds[0].shape is folds[1].shape


def test_a_layout_keeps_a_bounded_number_of_shapes():
    layout = FoldLayout()
    made = [layout.shape({("f", None): {f"group{i}": i}}, {}) for i in range(3 * MAX_SHAPES)]
    assert len({id(shape) for shape in made}) == len(made)
    assert layout.shape({("f", None): {f"group{len(made) - 1}": len(made) - 1}}, {}) is made[-1]
    assert layout.shape({("f", None): {"group0": 0}}, {}) is not made[0]  # dropped long since


def test_a_group_with_two_bucket_layouts_is_computed_window_by_window():
    snapshots = history(3, length=6)
    end = snapshots[-1]
    wide = np.array([0.1, 1.0, math.inf])
    # A second series in the same group ("/a", any model) with another layout and more observations.
    end.histograms["latency"][key("/a", "m3")] = histogram(np.array([1.0, 500.0, 900.0]), 400.0, 900.0)
    end.bounds["latency"] = {**end.bounds["latency"], key("/a", "m3"): wide}
    starts = snapshots[:4]
    together = compute_many(WindowSet(starts, end, MAPPING, Selection(), FoldCache()), EVERYTHING)
    alone = [compute(Window(start, end, MAPPING, Selection(), FoldCache()), EVERYTHING) for start in starts]
    assert together == alone
    assert together[0]["latency"]["/a"]["max"] == 1000.0  # the wide layout's, in every window


def test_a_histogram_series_that_vanishes_within_an_epoch_gives_each_window_its_own_figures():
    # A series gone from the end (its worker retired it) leaves its group's counts lower than at the
    # starts: negative increases, which the one gather of every group does not pad; the figures are
    # still each window's own.
    snapshots = history(4, length=8, bounds=ABOVE_ZERO)
    end = snapshots[-1]
    for name in HISTOGRAMS:
        gone = next(iter(end.histograms[name]))
        del end.histograms[name][gone]
    starts = snapshots[:6]
    figures = compute_figures(WindowSet(starts, end, MAPPING, Selection(), FoldCache()), EVERYTHING)
    alone = [compute(Window(start, end, MAPPING, Selection(), FoldCache()), EVERYTHING) for start in starts]
    assert figures.rows() == alone
    assert figures.texts() == [dumps_figures(data) for data in alone]


def test_the_histogram_table_is_made_once_for_the_ticks_that_share_a_layout():
    snapshots = history(9, bounds=ABOVE_ZERO)
    cache = FoldCache()
    before = histogram_table.cache_info()
    for end in snapshots[-3:]:  # three ticks; every group has appeared by then
        compute_figures(WindowSet(snapshots[:8], end, MAPPING, Selection(), cache), EVERYTHING)
    after = histogram_table.cache_info()
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 2)


def test_windows_across_a_restart_are_not_a_set():
    snapshots = history(5, length=4)
    snapshots[-1].epoch = 1
    with pytest.raises(ValueError, match="one epoch"):
        WindowSet(snapshots[:2], snapshots[-1], MAPPING, Selection(), FoldCache())


def test_float_noise_between_two_sums_of_the_same_values_is_no_increase():
    # The same three series, read in another order at the end: (0.3 + 0.2) + 0.1 < (0.1 + 0.2) + 0.3.
    series = [(key("/a", f"m{i}"), value) for i, value in enumerate((0.1, 0.2, 0.3))]
    start = Snapshot(0.0, {"req": dict(reversed(series))})
    middle = Snapshot(5.0, {"req": dict(reversed(series))})
    end = Snapshot(10.0, {"req": dict(series)})
    assert sum(end.values["req"].values()) > sum(start.values["req"].values())
    together = compute_many(WindowSet([start, middle], end, MAPPING, Selection(), FoldCache()), EVERYTHING)
    assert [data["throughput"]["total_requests_per_sec"] for data in together] == [0.0, 0.0]
    assert [data["throughput"]["requests_per_sec"] for data in together] == [{}, {}]


def test_a_layout_that_outgrows_its_cap_starts_over_and_the_figures_stay_exact():
    # A cap below one snapshot's sums: every fold starts a new layout, so the folds of a set meet in
    # several layouts and are made again in one of their own; the figures do not change.
    snapshots = history(11)
    end = snapshots[-1]
    starts = snapshots[2:9]
    small = FoldCache(max_positions=8)
    together = compute_many(WindowSet(starts, end, MAPPING, Selection(), small), EVERYTHING)
    assert small.layout.size > small.max_positions
    assert together == compute_many(WindowSet(starts, end, MAPPING, Selection(), FoldCache()), EVERYTHING)
    assert together[0] == compute(Window(starts[0], end, MAPPING, Selection(), small), EVERYTHING)
    # Windows of several selections, summed from cells: each of the set's snapshots in one layout.
    chosen = [SELECTIONS[1 + at % 3] for at in range(len(starts))]
    apart = compute_many(WindowSet(starts, end, MAPPING, Selection(), small, selections=chosen), EVERYTHING)
    assert apart == compute_many(
        WindowSet(starts, end, MAPPING, Selection(), FoldCache(), selections=chosen), EVERYTHING
    )
    assert apart[1] == compute(Window(starts[1], end, MAPPING, chosen[1], FoldCache()), EVERYTHING)


def test_figures_rounded_as_arrays_are_rounded_as_numbers():
    values = [0.0, -0.0, 1e-5, -1e-5, 0.00005, 0.00015, 0.00025, 2.5e-4, 1.23456789, -7.77775, 1e300, -1e300]
    values += [math.nan, math.inf, -math.inf, 123456.78905, 0.1 + 0.2, 5e-324]
    rounded = round_figures(np.array(values))
    assert [math.copysign(1, r) for r in rounded] == [math.copysign(1, round_figure(v)) for v in values]
    assert rounded == [round_figure(v) for v in values]
    matrix = [[0.12345, 2.0], [math.nan, 3.00005]]  # any shape: a row per window
    assert round_figures(np.array(matrix)) == [[round_figure(v) for v in row] for row in matrix]


@pytest.mark.parametrize("windows", [0, 1, 3])
def test_figures_alike_in_every_window_are_written_into_the_template_and_read_the_same(windows):
    figures = ColumnFigures(windows)
    varying = np.arange(windows) * 0.5 + 0.25
    inner = FigureObject()
    inner.add("100%", figures.figure(np.full(windows, -1e-9)))  # rounds to 0.0 in every window
    inner.add("varies", figures.figure(varying), figures.mask(varying > 0.5))
    inner.add("%s", figures.figure(varying))  # a key that reads like a gap is text like any other
    figures.root.add("gauge", figures.figure(7.0))
    figures.root.add("rate", figures.figure(varying))
    figures.root.add("inner", inner)
    expected = [
        {"gauge": 7.0, "rate": v, "inner": {"100%": 0.0} | ({"varies": v} if v > 0.5 else {}) | {"%s": v}}
        for v in varying.tolist()
    ]
    assert figures.rows() == expected
    assert figures.texts() == [dumps_figures(row) for row in expected]
    assert figures.column("gauge") == [7.0] * windows and figures.column("rate") == varying.tolist()


@pytest.mark.parametrize("pairs", [1, DELTAS_TOGETHER_FROM - 1, DELTAS_TOGETHER_FROM, 50])
def test_deltas_written_together_are_each_pair_written_alone(pairs):
    """Each client's deltas: now minus before, rounded as a figure, where both hold a number; none before
    the first update. Many pairs take one ``ColumnFigures``, a few a dict each: the same text either way."""
    rng = np.random.default_rng(pairs)
    names = ("requests", "tokens", "errors", "streams")
    cases: list[tuple[tuple[float, ...], tuple[float, ...] | None]] = []
    for index in range(pairs):
        now = tuple(round_figure(v) for v in rng.uniform(-50, 50, len(names)))
        before = tuple(round_figure(v) for v in rng.uniform(-50, 50, len(names)))
        if index % 4 == 1:
            before = None  # a client's first update
        elif index % 4 == 2:  # a category the client does not receive: NaN now and before
            now, before = (*now[:2], math.nan, now[3]), (*before[:2], math.nan, before[3])
        elif index % 4 == 3:
            before = now  # nothing changed
        cases.append((now, before))
    expected = []
    for now, before in cases:
        changes = (
            {}
            if before is None
            else {name: round_figure(a - b) for name, a, b in zip(names, now, before, strict=True) if not math.isnan(a)}
        )
        expected.append(dumps_figures(changes))
    assert deltas_texts(names, cases) == expected
    assert [deltas_texts(names, [case])[0] for case in cases] == expected
    assert expected[0] != "{}" and (pairs < 2 or expected[1] == "{}")
