"""llama-server's slots, as ``GET /slots`` shows them, kept by an engine whose model speaks llama.cpp.

llama-server runs each request in one of ``--parallel`` slots and ``GET /slots`` lists them all: every
slot's id, context size and whether it is processing, and, once it has run a task, that task's figures
(the current one, or the last one after it ended). Shapes from ``server_slot::to_json`` and the
``get_slots`` handler in tools/server/server-context.cpp (ggml-org/llama.cpp, commit
001d906a6d86e2490e394361e7cc6f478b100088; excerpts in tests/data/llamacpp/).

A sequence takes the lowest free slot when the scheduler runs it and gives it back when it leaves the
running batch (finished, cancelled, or preempted); the slot keeps showing it until the next one. What
fakeai has no counterpart for (the sampling parameters it does not simulate) is left out of ``params``
rather than invented; a request with ``n`` choices holds one slot (llama-server gives each choice one).
"""

import heapq
import itertools
import weakref
from typing import Any

from fakeai.engine.sequence import Sequence, State


class Slots:
    """Which running sequence holds which slot, and what each slot last ran."""

    def __init__(self, count: int) -> None:
        self._count = count
        self._free = list(range(count))
        self._held: dict[Sequence, int] = {}
        self._shown: dict[int, tuple[int, Sequence]] = {}
        """Each slot's current or last task: its id and its sequence (one per slot at most: bounded)."""
        # Weakly held: a request preempted (out of its slot) and then cancelled while waiting never comes
        # back to release its id.
        self._task_ids: weakref.WeakKeyDictionary[Sequence, int] = weakref.WeakKeyDictionary()
        self._next_task = itertools.count()

    @property
    def idle(self) -> int:
        return max(self._count - len(self._held), 0)

    def resize(self, count: int) -> None:
        """A new ``--max-num-seqs``: slots beyond it leave once free; sequences running stay where they are."""
        if count > self._count:
            for slot in range(self._count, count):
                heapq.heappush(self._free, slot)
        else:
            self._free = [slot for slot in self._free if slot < count]
            heapq.heapify(self._free)
            held = set(self._held.values())
            self._shown = {slot: shown for slot, shown in self._shown.items() if slot < count or slot in held}
        self._count = count

    def take(self, seq: Sequence) -> None:
        """``seq`` joins the running batch: into the lowest free slot (a batch over a lowered limit
        takes slots past it, as many as it runs)."""
        if self._free:
            slot = heapq.heappop(self._free)
        else:
            held = set(self._held.values())
            slot = next(n for n in itertools.count(self._count) if n not in held)
        task = self._task_ids.get(seq)
        if task is None:  # a preempted request keeps its task on its way back
            task = self._task_ids[seq] = next(self._next_task)
        self._held[seq] = slot
        self._shown[slot] = (task, seq)

    def release(self, seq: Sequence) -> None:
        """``seq`` left the running batch; its slot shows it until another takes the slot."""
        slot = self._held.pop(seq, None)
        if slot is None:
            return
        if seq.state is State.FINISHED:
            self._task_ids.pop(seq, None)
        if slot < self._count:
            heapq.heappush(self._free, slot)
        else:
            self._shown.pop(slot, None)

    def to_json(self, n_ctx: int, speculative: bool, first_id: int = 0) -> list[dict[str, Any]]:
        """Every slot as ``server_slot::to_json(true)`` writes it (what ``GET /slots`` answers)."""
        held = set(self._held.values())
        slots = []
        for slot in sorted(set(range(self._count)) | held):
            shown: dict[str, Any] = {
                "id": first_id + slot,
                "n_ctx": n_ctx,
                "speculative": speculative,
                "is_processing": slot in held,
            }
            if slot in self._shown:
                task, seq = self._shown[slot]
                shown |= _task(task, seq)
            slots.append(shown)
        return slots


def _task(task: int, seq: Sequence) -> dict[str, Any]:
    request = seq.request
    generated = seq.max_choice_tokens
    limit = -1 if request.max_tokens is None else request.max_tokens
    # The prompt's tokens computed so far (a prefill may run in chunks), and in the slot's cache: the
    # prompt and every token generated but the last, which is sampled and not yet fed back.
    computed = max(seq.prompt_len - seq.cached_tokens - seq.prefill_left, 0)
    in_cache = seq.cached_tokens + computed + max(generated - 1, 0)
    return {
        "id_task": task,
        "n_prompt_tokens": in_cache,
        "n_prompt_tokens_processed": computed,
        "n_prompt_tokens_cache": seq.cached_tokens,
        "params": {"max_tokens": limit, "n_predict": limit, "ignore_eos": request.ignore_eos, "stream": request.stream},
        "next_token": [
            {
                "has_next_token": seq.state is not State.FINISHED and seq.unfinished > 0,
                "has_new_line": False,
                "n_remain": -1 if limit < 0 else max(limit - generated, 0),
                "n_decoded": generated,
            }
        ],
    }
