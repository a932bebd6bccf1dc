"""The figures of an update: rounded, and written as JSON text, one window at a time or many at once.

A ``WindowSet``'s measures (``bridge.categories``) put each figure of every window in a column (one
value per window) of ``ColumnFigures`` and say where it goes in the message: an object of keys, each a
figure or an object, present in every window or only where a mask says (a map of endpoints shows the
endpoints with traffic). All figures are rounded by one array operation and written by one ``orjson``
call; each window's text is a template filled with its numbers' text, one template per distinct set of
present keys. A hundred filter sets cost one pass, not a hundred dicts of dicts: what a client reads
is still exactly ``dumps_figures`` of what ``compute`` gives for its window alone
(``tests/bridge/test_window_set.py``).
"""

import functools
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Union, cast

import numpy as np
import orjson


def round_figure(value: float) -> float:
    """To four decimals, half to even on ``value * 10**4`` (so numpy can do it alike: ``round_figures``);
    0.0 for what JSON cannot carry."""
    if not math.isfinite(value):
        return 0.0
    scaled = value * 10000.0
    return round(scaled) / 10000.0 if math.isfinite(scaled) else value


def round_figures(values: np.ndarray) -> list[Any]:
    """``round_figure`` of every value (of any shape), as nested lists of floats."""
    return cast(list[Any], _rounded(values).tolist())


def _rounded(values: np.ndarray) -> np.ndarray:
    """``round_figure`` of every value, by array operations: ``np.rint`` is ``round`` (half to even), and
    ``+ 0.0`` turns the -0.0 of a small negative into the 0.0 that ``round`` gives. Every value comes out
    finite."""
    scaled = values * 10000.0
    if np.isfinite(scaled).all():  # the usual case, without the masks
        return cast(np.ndarray, np.rint(scaled) / 10000.0 + 0.0)
    finite = np.isfinite(values)
    scaled = np.where(finite, values, 0.0) * 10000.0
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(scaled), np.rint(scaled) / 10000.0 + 0.0, values)


def _number_texts(values: list[float]) -> list[str]:
    """Each number as orjson writes it (numbers hold no comma)."""
    return orjson.dumps(values).decode()[1:-1].split(",") if values else []


def dumps_figures(figures: dict[str, Any]) -> str:
    """The ``data`` (and ``deltas``) of an update, written by orjson: a hundred filter sets are a hundred
    of these a tick, and the standard library takes ten times as long. Only for what the bridge computed
    itself (finite rounded numbers under string keys), never for what a client sent: orjson would write
    a NaN as null where ``bridge.protocol.dumps`` refuses it."""
    return orjson.dumps(figures).decode()


@dataclass
class FigureObject:
    """An object of the message: its keys in order, each a figure (a column's index) or an object,
    present in every window (no mask) or where the mask (a mask's index) is set."""

    entries: list[tuple[str, Union[int, "FigureObject"], int | None]] = field(default_factory=list)

    def add(self, key: str, value: Union[int, "FigureObject"], mask: int | None = None) -> None:
        self.entries.append((key, value, mask))


@functools.lru_cache(maxsize=4096)
def _key_text(key: str) -> str:
    """A key as JSON, then ``:``."""
    return orjson.dumps(key).decode() + ":"


def _every(row: list[str]) -> list[str]:
    return row


class ColumnFigures:
    """The figures of ``windows`` windows as columns, and the objects they go in (``root``)."""

    def __init__(self, windows: int) -> None:
        self.windows = windows
        self.root = FigureObject()
        self._columns: list[tuple[int, float | np.ndarray]] = []
        """Each figure's first column and its values: a value, a column, or a block of columns."""
        self._width = 0
        self._masks: list[np.ndarray] = []
        self._matrix: np.ndarray | None = None
        self._numbers_text: tuple[dict[int, str], dict[int, int], list[list[str]]] | None = None
        self._templates: dict[int, dict[tuple[bool, ...], tuple[list[str], Callable[[list[str]], Sequence[str]]]]] = {}

    def figure(self, values: float | np.ndarray) -> int:
        """A figure of every window (a value, or an array of one per window), rounded when written."""
        self._columns.append((self._width, values))
        self._width += 1
        self._matrix = self._numbers_text = None
        return self._width - 1

    def figures(self, block: np.ndarray) -> range:
        """A figure per column of ``block`` (a row per window): one entry, not one per column."""
        first = self._width
        self._columns.append((first, block))
        self._width += block.shape[1]
        self._matrix = self._numbers_text = None
        return range(first, self._width)

    def mask(self, present: np.ndarray) -> int | None:
        """Where a key is present (None: in every window)."""
        if present.all():
            return None
        self._masks.append(present)
        return len(self._masks) - 1

    def masks(self, present: np.ndarray) -> list[int | None]:
        """``mask`` of each column of ``present`` (a row per window)."""
        found: list[int | None] = []
        for every, column in zip(cast(list[bool], present.all(axis=0).tolist()), present.T, strict=True):
            if every:
                found.append(None)
            else:
                self._masks.append(column)
                found.append(len(self._masks) - 1)
        return found

    def _rounded_matrix(self) -> np.ndarray:
        """Every window's figures, rounded: a row per window, a column per figure."""
        if self._matrix is None:
            matrix = np.empty((self.windows, self._width))
            for first, values in self._columns:
                if isinstance(values, np.ndarray) and values.ndim == 2:
                    matrix[:, first : first + values.shape[1]] = values
                else:
                    matrix[:, first] = values  # a value fills the column
            self._matrix = _rounded(matrix)
        return self._matrix

    def _numbers(self) -> list[list[float]]:
        return cast(list[list[float]], self._rounded_matrix().tolist())

    def _patterns(self) -> list[tuple[bool, ...]]:
        if not self._masks:
            return [()] * self.windows
        return [tuple(row) for row in np.column_stack(self._masks).tolist()]

    def rows(self) -> list[dict[str, Any]]:
        """Each window's figures as a dict (what ``compute`` gives for that window alone)."""

        def build(node: FigureObject, numbers: list[float], present: tuple[bool, ...]) -> dict[str, Any]:
            return {
                key: numbers[value] if isinstance(value, int) else build(value, numbers, present)
                for key, value, mask in node.entries
                if mask is None or present[mask]
            }

        return [
            build(self.root, numbers, present)
            for numbers, present in zip(self._numbers(), self._patterns(), strict=True)
        ]

    def texts(self) -> list[str]:
        """Each window's figures as JSON text: ``dumps_figures`` of its row, byte for byte.

        A figure with the same value in every window (a gauge's current value, an error rate of 0, all
        of them when there is one window) is written once, into the templates; only the others are
        written per window."""
        return self._texts(self.root)

    def entry_texts(self) -> dict[str, list[str]]:
        """The text of each object at the root (each present in every window), window by window: what
        ``texts`` writes after its key. A client that asked for some categories of the message gets
        those pieces joined (``join_entries``), byte for byte ``dumps_figures`` of its categories."""
        return {key: self._texts(value) for key, value, _ in self.root.entries if isinstance(value, FigureObject)}

    def _texts(self, node: FigureObject) -> list[str]:
        if not self.windows:
            return []
        constants, slots, numbers_text = self._written()
        templates = self._templates.setdefault(id(node), {})
        texts = []
        for row, present in zip(numbers_text, self._patterns(), strict=True):
            found = templates.get(present)
            if found is None:
                found = templates[present] = self._template(node, present, constants, slots)
            parts, choose = found
            # The numbers into the gaps, then one join: a ``%``-template would be parsed again for every
            # window, all of its two kilobytes, for a few numbers.
            parts[1::2] = choose(row)
            texts.append("".join(parts))
        return texts

    def _written(self) -> tuple[dict[int, str], dict[int, int], list[list[str]]]:
        """The text of the figures alike in every window (by column), where each other figure lies in a
        window's numbers (by column), and each window's numbers as text, in that order."""
        if self._numbers_text is None:
            matrix = self._rounded_matrix()
            varies = (matrix != matrix[:1]).any(axis=0)
            texts = _number_texts(matrix[:1, ~varies].ravel().tolist())
            constants = dict(zip(np.flatnonzero(~varies).tolist(), texts, strict=True))
            slots = {column: slot for slot, column in enumerate(np.flatnonzero(varies).tolist())}
            if slots:
                # "[[1.0,2.5],[...]]", written by orjson from the array: the same text as from its list of
                # floats, without making the list (tests/bridge/test_window_set.py holds every text to
                # ``dumps_figures``).
                written = orjson.dumps(np.ascontiguousarray(matrix[:, varies]), option=orjson.OPT_SERIALIZE_NUMPY)
                numbers_text = [row.split(",") for row in written.decode()[2:-2].split("],[")]
            else:
                numbers_text = [[] for _ in range(self.windows)]
            self._numbers_text = (constants, slots, numbers_text)
            self._templates.clear()  # made for other constants
        return self._numbers_text

    def _template(
        self, node: FigureObject, present: tuple[bool, ...], constants: dict[int, str], slots: dict[int, int]
    ) -> tuple[list[str], Callable[[list[str]], Sequence[str]]]:
        """The text of ``node`` in the windows whose masks are ``present`` as its pieces: text, then a gap
        for each figure not in ``constants`` (those are written in), each followed by text; and what picks
        the gaps' numbers from a row of the figures at ``slots``, in order."""
        pieces: list[str] = []  # the text since the last gap
        parts: list[str] = []
        chosen: list[int] = []

        def write(node: FigureObject) -> None:
            pieces.append("{")
            first = True
            for key, value, mask in node.entries:
                if mask is not None and not present[mask]:
                    continue
                if not first:
                    pieces.append(",")
                first = False
                pieces.append(_key_text(key))
                if not isinstance(value, int):
                    write(value)
                elif value in constants:
                    pieces.append(constants[value])
                else:
                    parts.extend(("".join(pieces), ""))  # the gap: filled for each window
                    pieces.clear()
                    chosen.append(slots[value])
            pieces.append("}")

        write(node)
        parts.append("".join(pieces))
        if chosen == list(range(len(slots))):
            return parts, _every
        if len(chosen) < 2:  # itemgetter gives a tuple for two or more
            return parts, lambda row: [row[index] for index in chosen]
        return parts, operator.itemgetter(*chosen)

    def column(self, *path: str) -> list[float] | None:
        """Every window's figure at ``path`` (keys from the root, each present in every window), or None."""
        node: int | FigureObject = self.root
        for key in path:
            if isinstance(node, int):
                return None
            found = [value for name, value, mask in node.entries if name == key and mask is None]
            if not found:
                return None
            node = found[0]
        if not isinstance(node, int):
            return None
        return cast(list[float], self._rounded_matrix()[:, node].tolist())


class DictFigures:
    """Figures computed window by window (as ``Window``s), offered as ``ColumnFigures`` offers its own."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self._rows = rows
        self.windows = len(rows)

    def rows(self) -> list[dict[str, Any]]:
        return self._rows

    def texts(self) -> list[str]:
        return [dumps_figures(row) for row in self._rows]

    def entry_texts(self) -> dict[str, list[str]]:
        keys = self._rows[0] if self._rows else {}
        return {key: [dumps_figures(row[key]) for row in self._rows] for key in keys}

    def column(self, *path: str) -> list[float] | None:
        values = []
        for row in self._rows:
            found: Any = row
            for key in path:
                if not isinstance(found, dict) or key not in found:
                    return None
                found = found[key]
            values.append(found)
        return values


def join_entries(texts: dict[str, str]) -> str:
    """The object of these entries' texts (``ColumnFigures.entry_texts``), in their order."""
    return "{" + ",".join(_key_text(key) + text for key, text in texts.items()) + "}"


DELTAS_TOGETHER_FROM = 32
"""From this many distinct (figures, previous) pairs a tick writes their deltas as one ``ColumnFigures``:
a hundred distinct filter sets are a hundred pairs, one set's subscribers usually one. The arrays cost a
fixed ~45 us, a pair alone ~2 us (less where NaNs leave figures out): measured in a loop, 16 pairs 47 us
alone against 59 together, 50 pairs 99 against 83; pairs of every subset of the figures were cheaper
alone even at 100 (189 against 222 us), but such pairs are few (``bridge.hub.Hub._post`` writes sets
alike in the deltas' categories once)."""


def deltas_texts(
    names: Sequence[str], pairs: Sequence[tuple[tuple[float, ...], tuple[float, ...] | None]]
) -> list[str]:
    """Each pair's deltas as JSON text: for each of ``names``, the figure now minus the one before,
    rounded as a figure (``round_figure``), where both are numbers (NaN: the client's categories hold
    none); ``{}`` where there is no figure before (a client's first update). Many pairs are written as the
    rows of one ``ColumnFigures``, byte for byte what ``dumps_figures`` writes of each alone."""
    if len(pairs) < DELTAS_TOGETHER_FROM:
        return [_deltas_text(names, now, previous) for now, previous in pairs]
    none = (math.nan,) * len(names)
    now = np.array([row for row, _ in pairs], dtype=float).reshape(len(pairs), len(names))
    before = np.array([none if row is None else row for _, row in pairs], dtype=float).reshape(now.shape)
    changes = now - before
    present = ~np.isnan(changes)
    out = ColumnFigures(len(pairs))
    for name, column, mask in zip(names, out.figures(np.where(present, changes, 0.0)), out.masks(present), strict=True):
        out.root.add(name, column, mask)
    return out.texts()


def _deltas_text(names: Sequence[str], now: tuple[float, ...], previous: tuple[float, ...] | None) -> str:
    if previous is None:
        return "{}"
    changes = {
        name: round_figure(value - before)
        for name, value, before in zip(names, now, previous, strict=True)
        if not (math.isnan(value) or math.isnan(before))
    }
    return dumps_figures(changes)
