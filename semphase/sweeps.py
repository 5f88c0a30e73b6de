"""Cached, resumable measurements built on :class:`semphase.ablation.AblationEngine`.

Every function here stores its finished units in an :class:`~semphase.cache.EvidenceStore`
entry keyed by everything the numbers depend on, and returns numpy arrays of per-block loss
sums (see :data:`semphase.ablation.BLOCK`):

* baseline: [chunk, block]
* single-head sweep: [layer, head, chunk, block] (NaN for layers not swept)
* cumulative curve: [step, chunk, block] (any kind of ``ablation.INTERVENTIONS``, attention
  replacements included; ``assigned_curve``: each head its own kind)
* weight edits (exp6's W_Q injections): [item, chunk, block]

A run that is killed resumes at the first unfinished unit; finished units are read back,
not recomputed.
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Callable, Sequence

import numpy as np
import torch

from .ablation import BLOCK, AblationEngine, Head, block_counts, block_sums, check_finite
from .cache import EvidenceStore
from .cores import rebalance
from .data import TokenSet


def base_key(lm, ts: TokenSet) -> dict:
    return {
        **lm.cache_key(),
        "tokens_sha256": ts.fingerprint,
        "n_chunks": ts.n_chunks,
        "ctx": ts.ctx,
        "block": BLOCK,
    }


class Progress:
    """A tqdm bar with an ETA on stderr, or nothing."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    def say(self, text: str) -> None:
        if self.enabled:
            print(text, file=sys.stderr, flush=True)

    @contextmanager
    def bar(self, total: int, desc: str):
        if not self.enabled or total <= 0:
            yield _NoBar()
            return
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=desc, file=sys.stderr, dynamic_ncols=True, leave=True,
                   mininterval=0.5 if sys.stderr.isatty() else 30.0,
                   bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]")
        try:
            yield bar
        finally:
            bar.close()


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass


def counts(ts: TokenSet) -> np.ndarray:
    return np.asarray(block_counts(ts.ctx - 1), dtype=np.int64)


def _put_baseline(store: EvidenceStore, lm, ts: TokenSet, c: int, nll: torch.Tensor) -> None:
    entry = store.entry("baseline", base_key(lm, ts))
    if store.shard is not None:  # cluster tasks: the first to capture the chunk stores its baseline, once
        store.shard.put_if_free(entry, f"c{c}", lambda: block_sums(nll))
    elif entry.get(f"c{c}") is None:
        entry.put(f"c{c}", block_sums(nll))


def _per_chunk(store: EvidenceStore, entry, n_chunks: int, compute: Callable[[int], object], desc: str,
               progress: Progress | None):
    """Yield one unit per chunk (``c{c}``) of ``entry``, in chunk order, read back or computed as ``compute(c)``:
    under the entry's lock, one chunk's data at a time; in a cluster task, shared with the other tasks through
    per-unit locks (:meth:`semphase.cluster.Shard.run_units`) and yielded once every chunk is cached."""
    names = [f"c{c}" for c in range(n_chunks)]
    with (progress or Progress(False)).bar(n_chunks, desc) as bar:
        if store.shard is not None:
            yield from store.shard.run_units(entry, names, compute, bar)
            return
        with entry.lock():
            for c, name in enumerate(names):
                yield entry.get_or_compute(name, lambda c=c: compute(c))
                bar.update()


def baseline(engine: AblationEngine, ts: TokenSet, store: EvidenceStore,
             progress: Progress | None = None) -> np.ndarray:
    entry = store.entry("baseline", base_key(engine.lm, ts))
    out = _per_chunk(store, entry, ts.n_chunks, lambda c: block_sums(engine.forward_nll(ts.chunks[c])), "baseline",
                     progress)
    return np.asarray(list(out), dtype=np.float64)


def head_means(engine: AblationEngine, ts: TokenSet, store: EvidenceStore,
               progress: Progress | None = None) -> torch.Tensor:
    """mu(l, h): mean of hook_z over every position of every chunk of ``ts`` [L, H, d_head]."""
    entry = store.entry("means", base_key(engine.lm, ts))

    def compute(c):
        sums, count = engine.hook_z_sums(ts.chunks[c])
        return {"sums": sums.tolist(), "count": count}

    total = None
    n = 0
    for data in _per_chunk(store, entry, ts.n_chunks, compute, "head means", progress):
        sums = torch.tensor(data["sums"], dtype=torch.float64)
        total = sums if total is None else total + sums
        n += data["count"]
    return (total / n).to(torch.float32).to(engine.device)


def chunk_units(engine: AblationEngine, ts: TokenSet, store: EvidenceStore, entry, items: Sequence,
                unit: Callable[[object, int], str], compute: Callable, desc: str, progress: Progress | None = None,
                captures: dict | None = None):
    """The one resumable unit loop every sweep uses: for each chunk and each item, read the unit
    back from ``entry`` or compute it as ``compute(capture, item, chunk)`` and store it at once.

    Work runs chunk by chunk, so one chunk's captured activations are in memory at a time; the
    chunk is captured (one clean forward, whose baseline loss is stored too) only when one of its
    units is missing. A killed run resumes at the first missing unit. Yields
    ``(item index, chunk, unit data)`` while holding ``entry``'s lock.

    ``captures`` (a dict the caller keeps, chunk -> capture): captured chunks are kept there and
    reused by the next call with the same dict (a caller that asks for a few more items of the same
    tokens several times, as a bisection does, then captures each chunk once; the dict holds every
    chunk's block inputs, so it is for a few chunks).

    In a cluster task (``store.shard``, see :mod:`semphase.cluster`) the units are shared with the other tasks
    through per-unit locks instead of the entry's lock: this task computes its share first, then any unit no one
    else holds, and yields every unit once all are cached. With progress on, a sweep that finds some of its units
    cached says how many at its start.
    """
    progress = progress or Progress(False)
    if progress.enabled:  # a resumed sweep says so at its start
        names = [unit(item, c) for c in range(ts.n_chunks) for item in items]
        have = sum(1 for n in names if entry.has(n))
        if have:
            progress.say(f"{desc}: {have} of {len(names)} units cached (read back), {len(names) - have} to compute")
    if store.shard is not None:
        yield from _shared_chunk_units(engine, ts, store, entry, items, unit, compute, desc, progress, captures)
        return
    with entry.lock(), progress.bar(len(items) * ts.n_chunks, desc) as bar:
        for c in range(ts.n_chunks):
            cap = None if captures is None else captures.get(c)
            for i, item in enumerate(items):
                name = unit(item, c)
                data = entry.get(name)
                if data is None:
                    rebalance()  # this process's share of the cores, as other semphase processes come and go
                    start = time.perf_counter()  # a unit's time includes the chunk's capture when it made it
                    if cap is None:
                        cap = engine.capture(ts.chunks[c])
                        _put_baseline(store, engine.lm, ts, c, cap.baseline_nll)
                        if captures is not None:
                            captures[c] = cap
                    data = compute(cap, item, c)
                    entry.put(name, data, seconds=time.perf_counter() - start)
                yield i, c, data
                bar.update()
            del cap


def _shared_chunk_units(engine, ts, store, entry, items, unit, compute, desc, progress, captures):
    pairs = [(c, i) for c in range(ts.n_chunks) for i in range(len(items))]
    held: dict = {} if captures is None else captures

    def compute_pair(k):
        c, i = pairs[k]
        cap = held.get(c)
        if cap is None:
            if captures is None:
                held.clear()  # one chunk's activations in memory at a time
            cap = held[c] = engine.capture(ts.chunks[c])
            _put_baseline(store, engine.lm, ts, c, cap.baseline_nll)
        return compute(cap, items[i], c)

    with (progress or Progress(False)).bar(len(pairs), desc) as bar:
        data = store.shard.run_units(entry, [unit(items[i], c) for c, i in pairs], compute_pair, bar)
    if captures is None:
        held.clear()
    for k, (c, i) in enumerate(pairs):
        yield i, c, data[k]


def single_sweep(engine: AblationEngine, ts: TokenSet, kind: str, store: EvidenceStore,
                 layers: Sequence[int] | None = None, means: torch.Tensor | None = None,
                 means_tokens: str | None = None, progress: Progress | None = None) -> np.ndarray:
    """Each head ablated alone: per-block loss sums [L, H, chunk, block], checkpointed per
    (layer, chunk)."""
    lm = engine.lm
    layers = list(range(lm.n_layers)) if layers is None else sorted(set(int(l) for l in layers))
    entry = store.entry(f"single-{kind}", dict(base_key(lm, ts), ablation=kind, means_tokens_sha256=means_tokens))
    out = np.full((lm.n_layers, lm.n_heads, ts.n_chunks, len(block_counts(ts.ctx - 1))), np.nan)

    def compute(cap, layer, c):
        return [block_sums(v) for v in engine.layer_single_nll(cap, layer, kind, means)]

    for i, c, data in chunk_units(engine, ts, store, entry, layers, lambda layer, c: f"L{layer}_c{c}", compute,
                                  f"{kind}-ablation sweep", progress):
        out[layers[i], :, c, :] = np.asarray(data)
    return out


def curve(engine: AblationEngine, ts: TokenSet, kind: str, order: Sequence[Head],
          steps: Sequence[int], store: EvidenceStore, means: torch.Tensor | None = None,
          means_tokens: str | None = None, name: str = "curve",
          progress: Progress | None = None, captures: dict | None = None) -> np.ndarray:
    """Cumulative ablation: for each n in ``steps``, the first n heads of ``order`` ablated
    together. Per-block loss sums [step, chunk, block], checkpointed per (step, chunk)."""
    lm = engine.lm
    order = [(int(l), int(h)) for l, h in order]
    steps = [int(s) for s in steps]
    key = dict(base_key(lm, ts), ablation=kind, means_tokens_sha256=means_tokens, order=order)
    entry = store.entry(f"curve-{kind}", key)
    out = np.full((len(steps), ts.n_chunks, len(block_counts(ts.ctx - 1))), np.nan)

    def compute(cap, n, c):
        return block_sums(engine.ablated_nll(cap, order[:n], kind, means, step=f"{name}, {n} heads ablated, chunk {c}"))

    for i, c, data in chunk_units(engine, ts, store, entry, steps, lambda n, c: f"n{n}_c{c}", compute, name, progress,
                                  captures):
        out[i, c, :] = np.asarray(data)
    return out


def joint(engine: AblationEngine, ts: TokenSet, kind: str, heads: Sequence[Head],
          store: EvidenceStore, means: torch.Tensor | None = None, means_tokens: str | None = None,
          name: str = "joint", progress: Progress | None = None, captures: dict | None = None) -> np.ndarray:
    """All ``heads`` ablated together: per-block loss sums [chunk, block]. ``captures``: as in
    :func:`chunk_units` (many joints on the same tokens then capture each chunk once)."""
    heads = sorted((int(l), int(h)) for l, h in heads)
    return curve(engine, ts, kind, heads, [len(heads)], store, means, means_tokens, name, progress, captures)[0]


def edited(engine: AblationEngine, ts: TokenSet, store: EvidenceStore, kind: str, key: dict, items: Sequence[str],
           edit: Callable[[str], tuple[int, object]], name: str = "weight edits",
           progress: Progress | None = None) -> np.ndarray:
    """Each item a weight edit of the model: per-block loss sums [item, chunk, block],
    checkpointed per (item, chunk) through :func:`chunk_units`.

    ``edit(item)`` returns ``(first layer it changes, a context manager that applies the edit and
    restores the weights on exit)``; the chunk's forward then resumes from that layer's captured
    input (an edit of layer l cannot change what enters blocks 0..l-1). An item's id must change
    whenever its edit does (exp6 puts a hash of the injected matrices in it).
    """
    entry = store.entry(kind, dict(base_key(engine.lm, ts), **key))
    out = np.full((len(items), ts.n_chunks, len(block_counts(ts.ctx - 1))), np.nan)

    def compute(cap, item, c):
        start, context = edit(item)
        if start >= engine.n_layers:  # the edit changes nothing
            return block_sums(cap.baseline_nll)
        with context:
            nll = engine.resume_nll(cap, start, [])[0]
        check_finite(nll, f"{name}: {item}, chunk {c}")
        return block_sums(nll)

    for i, c, data in chunk_units(engine, ts, store, entry, list(items), lambda item, c: f"{item}_c{c}", compute,
                                  name, progress):
        out[i, c, :] = np.asarray(data)
    return out


def assigned_curve(engine: AblationEngine, ts: TokenSet, order: Sequence[tuple[int, int, str]], steps: Sequence[int],
                   store: EvidenceStore, means: torch.Tensor | None = None, means_tokens: str | None = None,
                   name: str = "assigned curve", progress: Progress | None = None,
                   captures: dict | None = None) -> np.ndarray:
    """Cumulative curve where each head carries its own kind, ``(layer, head, kind)`` (the
    original's "mixed" linearisation, each head its best method): for each n in ``steps`` the first
    n entries of ``order`` applied together. Per-block loss sums [step, chunk, block],
    checkpointed per (step, chunk) like :func:`curve`."""
    order = [(int(l), int(h), str(k)) for l, h, k in order]
    steps = [int(s) for s in steps]
    key = dict(base_key(engine.lm, ts), ablation="assigned", means_tokens_sha256=means_tokens,
               order=[list(x) for x in order])
    entry = store.entry("curve-assigned", key)
    out = np.full((len(steps), ts.n_chunks, len(block_counts(ts.ctx - 1))), np.nan)

    def compute(cap, n, c):
        return block_sums(engine.assigned_nll(cap, order[:n], means, step=f"{name}, {n} heads changed, chunk {c}"))

    for i, c, data in chunk_units(engine, ts, store, entry, steps, lambda n, c: f"n{n}_c{c}", compute, name, progress,
                                  captures):
        out[i, c, :] = np.asarray(data)
    return out
