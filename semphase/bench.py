"""Benchmarks behind the project's speed and memory claims, each a ratio measured in one run.

* ``ablation``: the engine's single-head zero sweep against the plain loop (one full
  ``run_with_hooks`` forward per head and chunk, as the original did), same tokens, same process.
* ``head-batch``: the engine's single-head sweep one head per forward against several heads
  side by side in one batched forward (the default on a CPU for short chunks), same tokens.
* ``cache``: the same cached measurement run twice against a fresh cache: first (computed) vs
  second (read back).
* ``workers``: the exp10 smoke claim tests for two models with ``-n 2`` against ``-n 0``.
* ``memory``: peak resident memory during the single-head sweep at two token counts, each in a
  fresh process; the growth must stay within one chunk's activations.
* ``attention``: one layer's softmax attention (as the Bridge computes it, and PyTorch's fused
  kernel) against the factorised feature-map attention of :mod:`semphase.attention` at 1,024
  tokens on the model's shapes; and greedy generation tokens/s with and without the key/value
  cache (:mod:`semphase.generation`), same prompt, same tokens.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from .ablation import AblationEngine, ablation_hook, hook_z_name


def _sync(lm) -> None:
    if lm.device.type == "cuda":
        torch.cuda.synchronize()


def _engine_sweep(engine: AblationEngine, ts, layers: list[int]) -> tuple[float, np.ndarray]:
    """The engine's single-head zero sweep of ``layers`` (capture once per chunk, resume from the
    ablated layer): its wall time and the summed loss per head [L, H]."""
    lm = engine.lm
    out = np.zeros((lm.n_layers, lm.n_heads))
    _sync(lm)
    t0 = time.perf_counter()
    for c in range(ts.n_chunks):
        cap = engine.capture(ts.chunks[c])
        for l in layers:
            for h, nll in enumerate(engine.layer_single_nll(cap, l, "zero")):
                out[l, h] += float(nll.sum())
        del cap
    _sync(lm)
    return time.perf_counter() - t0, out


def bench_ablation(lm, ts, layers: list[int], head_batch: int = 1) -> dict:
    heads = [(l, h) for l in layers for h in range(lm.n_heads)]
    engine = AblationEngine(lm, head_batch=head_batch)
    engine.forward_nll(ts.chunks[0][: min(ts.ctx, 16)])  # warm-up outside both timings
    _sync(lm)
    t0 = time.perf_counter()
    plain = np.zeros(len(heads))
    for i, (l, h) in enumerate(heads):
        for c in range(ts.n_chunks):
            plain[i] += float(engine.forward_nll(ts.chunks[c], [(hook_z_name(l), ablation_hook("zero", [h]))]).sum())
    _sync(lm)
    t_plain = time.perf_counter() - t0
    t_fast, fast = _engine_sweep(engine, ts, layers)
    n = ts.n_predicted
    ppl_plain = np.exp(plain / n)
    ppl_fast = np.exp(np.array([fast[l, h] for l, h in heads]) / n)
    return {"heads": len(heads), "tokens": ts.n_tokens, "plain_s": t_plain, "engine_s": t_fast,
            "ratio": t_plain / t_fast, "max_rel_ppl_diff": float(np.max(np.abs(ppl_fast - ppl_plain) / ppl_plain))}


def bench_head_batch(lm, ts, layers: list[int], head_batch: int) -> dict:
    """The engine's single-head zero sweep one head per forward (the plain way) against
    ``head_batch`` heads side by side in one batched forward, same tokens, same process."""
    AblationEngine(lm).forward_nll(ts.chunks[0][: min(ts.ctx, 16)])  # warm-up outside both timings
    t_one, one = _engine_sweep(AblationEngine(lm, head_batch=1), ts, layers)
    t_batch, batched = _engine_sweep(AblationEngine(lm, head_batch=head_batch), ts, layers)
    rel = np.abs(batched - one) / np.maximum(np.abs(one), 1e-12)
    return {"heads": len(layers) * lm.n_heads, "tokens": ts.n_tokens, "ctx": ts.ctx, "head_batch": head_batch,
            "one_s": t_one, "batched_s": t_batch, "ratio": t_one / t_batch,
            "max_rel_nll_diff": float(rel[layers].max())}


def bench_softmax(lm, ts, layers: list[int]) -> dict:
    """The engine's single-head zero sweep with TransformerLens's guarded attention softmax (the plain way) against
    the engine's unguarded one (:func:`semphase.ablation.unguarded_softmax`), same tokens, same process, in turn
    (guarded, unguarded, guarded, unguarded; the faster of each pair's two timings); the summed losses must be
    identical."""
    AblationEngine(lm).forward_nll(ts.chunks[0][: min(ts.ctx, 16)])  # warm-up outside the timings
    times = {True: [], False: []}
    sums = {}
    for _ in range(2):
        for guarded in (True, False):
            t, out = _engine_sweep(AblationEngine(lm, guarded_softmax=guarded), ts, layers)
            times[guarded].append(t)
            sums[guarded] = out
    return {"heads": len(layers) * lm.n_heads, "tokens": ts.n_tokens, "ctx": ts.ctx,
            "guarded_s": min(times[True]), "unguarded_s": min(times[False]),
            "ratio": min(times[True]) / min(times[False]), "identical": bool(np.array_equal(sums[True], sums[False]))}


def bench_joints(lm, ts, n_sets: int = 4, set_size: int = 20, seed: int = 0) -> dict:
    """Joint zero-ablations of ``n_sets`` random head sets (exp10 part h's null draws): each joint capturing
    every chunk for itself (the plain way) against the chunks captured once for all joints (part h's shared
    captures), same sets, same process; the summed losses must be identical."""
    from . import sweeps
    from .cache import EvidenceStore

    engine = AblationEngine(lm)
    engine.forward_nll(ts.chunks[0][: min(ts.ctx, 16)])  # warm-up outside both timings
    rng = np.random.default_rng(seed)
    heads = [(l, h) for l in range(lm.n_layers) for h in range(lm.n_heads)]
    size = max(1, min(set_size, len(heads) // 4))  # distinct sets (each joint its own cache entry)
    sets = [sorted(heads[j] for j in rng.choice(len(heads), size=size, replace=False)) for _ in range(n_sets)]
    out = {}
    for way, captures in (("plain", None), ("shared", {})):
        with tempfile.TemporaryDirectory() as tmp:
            store = EvidenceStore(tmp)
            f0 = engine.forwards
            _sync(lm)
            t0 = time.perf_counter()
            sums = [sweeps.joint(engine, ts, "zero", s, store, name=f"set {i}", captures=captures).sum()
                    for i, s in enumerate(sets)]
            _sync(lm)
            out[way] = (time.perf_counter() - t0, engine.forwards - f0, np.array(sums))
    return {"sets": n_sets, "set_size": len(sets[0]), "tokens": ts.n_tokens, "ctx": ts.ctx,
            "plain_s": out["plain"][0], "shared_s": out["shared"][0], "ratio": out["plain"][0] / out["shared"][0],
            "plain_forwards": out["plain"][1], "shared_forwards": out["shared"][1],
            "identical": bool(np.array_equal(out["plain"][2], out["shared"][2]))}


def bench_cache(lm, ts, layers: list[int]) -> dict:
    from . import sweeps
    from .cache import EvidenceStore

    engine = AblationEngine(lm)
    with tempfile.TemporaryDirectory() as tmp:
        times = []
        results = []
        for _ in range(2):
            store = EvidenceStore(tmp)
            t0 = time.perf_counter()
            results.append(sweeps.single_sweep(engine, ts, "zero", store, layers))
            times.append(time.perf_counter() - t0)
    same = bool(np.array_equal(results[0], results[1], equal_nan=True))
    return {"first_s": times[0], "second_s": times[1], "ratio": times[0] / max(times[1], 1e-9), "identical": same}


def bench_workers(models: list[str], extra: list[str]) -> dict:
    """Wall time of the exp10 smoke claim tests for ``models``: -n 0 against -n 2."""
    root = Path(__file__).resolve().parent.parent
    times, outcomes = {}, {}
    for n in (0, 2):
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "pytest", str(root / "tests" / "claims" / "test_exp10.py"), "-q",
                   "-p", "no:cacheprovider", "--budget", "smoke", f"--output-dir={tmp}", "-n", str(n), *extra]
            for m in models:  # "=" form: pytest would take a bare folder for a test path when finding its rootdir
                cmd.append(f"--model={Path(m).resolve() if Path(m).is_dir() else m}")
            t0 = time.perf_counter()
            res = subprocess.run(cmd, capture_output=True, text=True, cwd=root)
            times[n] = time.perf_counter() - t0
            outcomes[n] = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else ""
            if res.returncode not in (0, 1):  # 1: some claim tests failed, which does not void a timing
                raise RuntimeError(f"pytest -n {n} did not run (exit {res.returncode}):\n{res.stdout[-2000:]}")
    return {"models": models, "n0_s": times[0], "n2_s": times[2], "ratio": times[0] / times[2],
            "outcomes": outcomes}


class RssSampler:
    """Peak resident set size of this process, sampled from /proc every few milliseconds."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss() -> int:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def __enter__(self):
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())
        return False


def memory_child(lm, ts, layers: list[int]) -> dict:
    from . import sweeps
    from .cache import EvidenceStore

    engine = AblationEngine(lm)
    before = RssSampler.rss()
    with RssSampler() as sampler:
        sweeps.single_sweep(engine, ts, "zero", EvidenceStore(None), layers)
    return {"tokens": ts.n_tokens, "chunks": ts.n_chunks, "rss_before": before, "peak_during_sweep": sampler.peak}


def chunk_bytes(lm, ctx: int) -> int:
    """One chunk's activations: the residual entering every block, plus logits and log-probs."""
    vocab = int(lm.bridge.cfg.d_vocab)
    return 4 * (lm.n_layers * ctx * lm.d_model + 3 * ctx * vocab)


def bench_memory(base_args: list[str], token_counts: list[int]) -> list[dict]:
    out = []
    for n in token_counts:
        cmd = [sys.executable, "-m", "semphase", "bench", "memory-child", "--tokens", str(n), *base_args]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(res.stderr[-2000:])
        out.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return out


def _median_seconds(fn, repeats: int, sync) -> float:
    fn()  # warm-up
    sync()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def bench_attention(lm, attn_tokens: int = 1024, prompt_tokens: int = 64, new_tokens: int = 128,
                    repeats: int = 3, seed: int = 0) -> dict:
    """Operator timings on the model's attention shapes (all query heads of one layer, random
    inputs, batch 1) and generation speed with and without the key/value cache."""
    import torch.nn.functional as F

    from .attention import DEFAULT_CHUNK, FEATURE_MAPS, feature_attention_factorised
    from .flops import head_attention_flops, model_shapes
    from .generation import best_of_n, generate

    shapes = model_shapes(lm)
    H, Hkv, d, n = shapes.n_heads, shapes.n_kv_heads, shapes.d_head, int(attn_tokens)
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(1, H, n, d, generator=g).to(lm.device)
    k = torch.randn(1, Hkv, n, d, generator=g).to(lm.device)
    v = torch.randn(1, Hkv, n, d, generator=g).to(lm.device)
    rep = H // Hkv
    scale = d ** -0.5
    mask = torch.ones(n, n, dtype=torch.bool, device=lm.device).tril()
    phi = FEATURE_MAPS["elu1"]
    sync = (lambda: torch.cuda.synchronize()) if lm.device.type == "cuda" else (lambda: None)

    def softmax_eager():
        kk, vv = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        s = (q @ kk.transpose(-1, -2)) * scale
        return torch.softmax(s.masked_fill(~mask, float("-inf")), dim=-1) @ vv

    def softmax_fused():
        kk, vv = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        return F.scaled_dot_product_attention(q, kk, vv, is_causal=True)

    def kernel():
        kk, vv = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        return feature_attention_factorised(phi(q * scale ** 0.5), phi(kk * scale ** 0.5), vv)[0]

    with torch.no_grad():
        t_eager = _median_seconds(softmax_eager, repeats, sync)
        t_fused = _median_seconds(softmax_fused, repeats, sync)
        t_kernel = _median_seconds(kernel, repeats, sync)
        prompt = torch.randint(0, int(shapes.d_vocab), (1, prompt_tokens), generator=g)
        generate(lm, prompt[:, : min(8, prompt_tokens)], 2)  # warm-up
        with_cache = generate(lm, prompt, new_tokens, use_cache=True)
        without = generate(lm, prompt, new_tokens, use_cache=False)
        # best-of-N as exp10P runs it: every prompt's candidates in one batch against one prompt at a time
        prompts = torch.randint(0, int(shapes.d_vocab), (4, prompt_tokens), generator=g)
        refs = torch.randint(0, int(shapes.d_vocab), (4, 8), generator=g)
        bon_new = min(new_tokens, 32)
        kw = dict(n_candidates=5, ns=(1, 5), new_tokens=bon_new, temperature=0.8, seed=seed)
        t0 = time.perf_counter()
        one = best_of_n(lm, lm, prompts, refs, prompt_batch=1, **kw)
        t_one = time.perf_counter() - t0
        t0 = time.perf_counter()
        together = best_of_n(lm, lm, prompts, refs, **kw)
        t_together = time.perf_counter() - t0
    return {
        "model": lm.name, "device": str(lm.device), "heads": H, "kv_heads": Hkv, "d_head": d, "attn_tokens": n,
        "softmax_eager_s": t_eager, "softmax_fused_s": t_fused, "kernel_s": t_kernel,
        "ratio_eager_over_kernel": t_eager / t_kernel, "ratio_fused_over_kernel": t_fused / t_kernel,
        "flops_softmax_per_head": head_attention_flops(n, d, "softmax"),
        "flops_kernel_per_head": head_attention_flops(n, d, "kernel", DEFAULT_CHUNK),
        "prompt_tokens": prompt_tokens, "new_tokens": new_tokens,
        "gen_cache_tok_s": with_cache.tokens_per_second, "gen_nocache_tok_s": without.tokens_per_second,
        "gen_ratio": with_cache.tokens_per_second / without.tokens_per_second,
        "gen_cache_used": with_cache.used_cache, "gen_note": with_cache.cache_note,
        "same_tokens": bool(torch.equal(with_cache.tokens, without.tokens)), "repeats": repeats,
        "bon_prompts": 4, "bon_candidates": 5, "bon_new_tokens": bon_new,
        "bon_one_prompt_at_a_time_s": t_one, "bon_batched_s": t_together, "bon_ratio": t_one / t_together,
        "bon_same_candidates": [p["candidates"] for p in one["per_prompt"]]
        == [p["candidates"] for p in together["per_prompt"]],
    }
