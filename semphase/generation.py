"""Generation for exp10P (science.md 14): greedy and seeded sampling with a key/value cache, with
or without replaced attention heads; best-of-N judged by independent measures; self-refinement
with a diversity measure.

**The key/value cache.** TransformerLens 4.3's Bridge reads the cache its attention layers should
extend from the keyword ``past_key_values`` (or ``layer_past``), while transformers 5 hands it to
attention modules as ``cache`` (Llama, GPT-2; GPT-NeoX still says ``layer_past``). Unpatched, a
cached forward of Llama or GPT-2 through the Bridge silently attends to the new tokens only (and
``TransformerBridge.generate(use_past_kv_cache=True)`` then returns other tokens than without the
cache). :func:`kv_cache_compat` passes ``cache`` on as ``past_key_values`` for the duration of a
generation; a machinery test checks cached logits against full forwards on every tiny
architecture. If a model returns no cache, generation runs without one and says so.

**Replaced heads** (``replaced``: ``(layer, head, kind)`` with any kind of
:data:`semphase.ablation.INTERVENTIONS`) act through the same hooks as in the ablation engine. The
score normalisations (relu, l1, identity, softmax) see the cached keys through the scores and use
the cache as they are; the factorised feature-map attention (``kernel``) carries its running sums
from step to step (its recurrent form). A kind that cannot use the cache (``kernel_quadratic``)
makes the generation run without it, and the result says so (``cache_note``).

**Sampling** draws from a CPU ``torch.Generator`` seeded per call (``seed``), from probabilities
moved to the CPU, so that a seed gives the same tokens on every device where the logits agree;
temperature divides the logits, and ``top_k`` (off by default; the original sampled from the full
distribution at temperature 0.8) keeps the k largest.

**Judges** for best-of-N: the original selected and scored candidates by the perplexity a baseline
model of the same family gives them (``scorer_ppl``). Beside it, two measures that do not share
that bias: ``reference_f1``, the bigram F1 overlap of each candidate with the true continuation of
its prompt (the text that followed it in the corpus), and ``reference_nll``, the likelihood of the
true continuation under the generating condition itself (per prompt; the same for every N, it
says whether the condition models real text worse, whatever best-of-N selects). ``judge_nll``
scores candidates with an independent model (another family, another tokenizer: the text is
re-encoded), as science.md 14.7 asks; the unmodified generator may score its own samples from its
generation steps (``keep_nll``) instead of a second forward.
"""
from __future__ import annotations

import math
import time
import warnings
from collections import Counter
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from .ablation import assignment_hooks, intervention, token_nll
from .errors import SemphaseError

Assignment = Sequence[tuple[int, int, str]]


# -- the key/value cache ------------------------------------------------------------------------

def _pass_cache_on(module, args, kwargs):
    if kwargs.get("cache") is not None and kwargs.get("past_key_values") is None and kwargs.get("layer_past") is None:
        kwargs = dict(kwargs)
        kwargs["past_key_values"] = kwargs["cache"]
        return args, kwargs
    return None


@contextmanager
def kv_cache_compat(bridge):
    """While inside: every attention layer of ``bridge`` that receives the cache as ``cache`` also
    gets it as ``past_key_values``, which TransformerLens 4.3's attention bridges read (see the
    module docstring). Removed on exit."""
    handles = []
    try:
        for block in bridge.blocks:
            attn = getattr(block, "attn", None)
            if attn is not None:
                handles.append(attn.register_forward_pre_hook(_pass_cache_on, with_kwargs=True))
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def _quiet():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*past_key_values.*deprecated.*")
        yield


# -- sampling -----------------------------------------------------------------------------------

LOGITS_BYTES = 2 ** 30  # best-of-N batches prompts until one step's full logits would pass this


def _vocab(lm) -> int:
    return int(getattr(lm.bridge.cfg, "d_vocab", None) or 50_257)


def seed_for(seed: int, index: int) -> int:
    """A per-item seed (prompt ``index`` of a run seeded ``seed``), independent of the item count."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def next_tokens(logits: torch.Tensor, do_sample: bool = False, temperature: float = 1.0, top_k: int | None = None,
                generator: torch.Generator | None = None,
                row_generators: Sequence[tuple[slice, torch.Generator]] | None = None) -> torch.Tensor:
    """The next token of each row of ``logits`` [b, vocab]: argmax, or a draw at ``temperature``
    (over the ``top_k`` largest when given) from ``generator`` (CPU), or, with ``row_generators``,
    rows ``sl`` drawn from their own generator for each ``(sl, generator)`` (several prompts in one
    batch, each sampled as if alone). Returns [b, 1] on the logits' device."""
    if not do_sample:
        return logits.argmax(dim=-1, keepdim=True)
    if not temperature > 0:
        raise SemphaseError(f"sampling needs a positive temperature, got {temperature}; use greedy decoding instead.")
    scaled = logits.detach().to("cpu", torch.float64) / float(temperature)
    if top_k is not None:
        if int(top_k) < 1:
            raise SemphaseError(f"top_k must be at least 1, got {top_k}.")
        k = min(int(top_k), scaled.shape[-1])
        kth = scaled.topk(k, dim=-1).values[..., -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    probs = torch.softmax(scaled, dim=-1)
    if row_generators:
        return torch.cat([torch.multinomial(probs[sl], 1, generator=g) for sl, g in row_generators]).to(logits.device)
    return torch.multinomial(probs, 1, generator=generator).to(logits.device)


@dataclass
class Generation:
    """What :func:`generate` produced and how."""

    tokens: torch.Tensor  # [b, prompt + new], on the CPU
    prompt_len: int
    used_cache: bool
    cache_note: str
    seconds: float
    forwards: int
    seed: int | None
    settings: dict = field(default_factory=dict)
    logits: torch.Tensor | None = None  # [b, new, vocab] next-token logits of each step (keep_logits)
    token_nll: torch.Tensor | None = None  # [b, new] loss of each generated token at temperature 1 (keep_nll)

    @property
    def new_tokens(self) -> torch.Tensor:
        return self.tokens[:, self.prompt_len:]

    @property
    def tokens_per_second(self) -> float:
        return self.new_tokens.numel() / self.seconds if self.seconds > 0 else float("inf")


def _as_batch(prompt) -> torch.Tensor:
    t = torch.as_tensor(prompt)
    if t.ndim == 1:
        t = t.unsqueeze(0)
    if t.ndim != 2 or t.shape[1] < 1:
        raise SemphaseError("a prompt must be a 1-D or 2-D tensor of token ids with at least one token "
                            "(equal-length rows for a batch).")
    return t.long()


def n_ctx(lm) -> int | None:
    v = getattr(lm.bridge.cfg, "n_ctx", None)
    return int(v) if v else None


def cache_support(replaced: Assignment) -> tuple[bool, str]:
    """Whether every kind in ``replaced`` can use the key/value cache, and if not, why."""
    bad = sorted({k for _, _, k in replaced if not intervention(k).supports_kv_cache})
    if bad:
        return False, (f"{', '.join(bad)} cannot use the key/value cache (its quadratic form needs every key at "
                       "each step); generated without the cache")
    return True, ""


def generate(lm, prompt, max_new_tokens: int, *, do_sample: bool = False, temperature: float = 1.0,
             top_k: int | None = None, seed: int | None = 0, replaced: Assignment = (),
             means: torch.Tensor | None = None, use_cache: bool = True, keep_logits: bool = False,
             row_seeds: Sequence[tuple[slice, int]] | None = None, keep_nll: bool = False,
             repeats: int = 1) -> Generation:
    """Continue ``prompt`` ([p] or [b, p] token ids) by ``max_new_tokens`` tokens, greedy or sampled
    (seeded), with the heads in ``replaced`` changed, with a key/value cache when ``use_cache`` and
    the model and every replaced kind allow it (else without, said in ``cache_note``).
    ``keep_logits`` keeps each step's next-token logits (on the CPU); ``keep_nll`` the loss of each
    generated token under the generating model itself at temperature 1 (-log softmax of the step's
    logits at the drawn token: the perplexity this condition gives its own text, without a second
    forward). ``repeats``: each prompt row stands for ``repeats`` consecutive rows (the candidates of
    best-of-N): with the cache, the prompt is read once and its keys/values (and any replaced head's
    running state) are repeated, the same numbers as reading every copy; without the cache the rows
    are repeated up front. ``row_seeds``: sample rows
    ``sl`` from a generator seeded by their own seed, for each ``(sl, seed)`` (several prompts in one
    batch, each drawn as in a call of its own)."""
    tokens = _as_batch(prompt)
    repeats = max(1, int(repeats))
    if max_new_tokens < 0:
        raise SemphaseError(f"max_new_tokens must be 0 or more, got {max_new_tokens}.")
    limit = n_ctx(lm)
    if limit is not None and tokens.shape[1] + max_new_tokens > limit:
        raise SemphaseError(f"prompt ({tokens.shape[1]}) plus {max_new_tokens} new tokens exceeds the model's "
                            f"context of {limit}; shorten the prompt or generate fewer tokens.")
    replaced = [(int(l), int(h), str(k)) for l, h, k in replaced]
    note = "" if use_cache else "key/value cache off by request"
    if use_cache:
        ok, why = cache_support(replaced)
        if not ok:
            use_cache, note = False, why
    bridge = lm.bridge
    generator = torch.Generator().manual_seed(int(seed)) if (do_sample and seed is not None) else None
    row_generators = [(sl, torch.Generator().manual_seed(int(s))) for sl, s in row_seeds] if (do_sample and row_seeds) \
        else None
    state: dict = {}
    _, hooks = assignment_hooks(bridge, replaced, means, state=state)
    cur = tokens.to(lm.device)
    share = repeats > 1 and use_cache and max_new_tokens > 0
    if repeats > 1 and not share:
        cur = cur.repeat_interleave(repeats, dim=0)
    forwards = 0
    kept: list[torch.Tensor] = []
    nlls: list[torch.Tensor] = []
    start = time.perf_counter()
    with torch.no_grad(), _quiet(), bridge.hooks(fwd_hooks=hooks), \
            (kv_cache_compat(bridge) if use_cache else nullcontext()):
        cache = None
        for step in range(max_new_tokens):
            if use_cache:
                if cache is None:
                    logits, cache = bridge(cur, return_type="logits_and_cache", use_cache=True)
                    if share:  # the prompt read once per distinct prompt, then repeated for its candidates
                        cur = cur.repeat_interleave(repeats, dim=0)
                        logits = logits[:, -1:].repeat_interleave(repeats, dim=0)
                        if cache is not None:
                            cache.batch_repeat_interleave(repeats)
                        for layer, (offset, held) in list(state.items()):
                            state[layer] = (offset, _repeat_rows(held, repeats))
                    if cache is None:
                        if share:
                            raise SemphaseError("the model returned no key/value cache, so prompts cannot be shared "
                                                "between candidates; generate with repeats=1.")
                        use_cache, note = False, "the model returned no key/value cache; generated without it"
                else:
                    logits, cache = bridge(cur[:, -1:], return_type="logits_and_cache", use_cache=True,
                                           past_key_values=cache)
            else:
                logits = bridge(cur, return_type="logits", use_cache=False)
            forwards += 1
            if keep_logits:
                kept.append(logits[:, -1, :].detach().cpu())
            nxt = next_tokens(logits[:, -1, :], do_sample, temperature, top_k, generator, row_generators)
            if keep_nll:
                logp = torch.log_softmax(logits[:, -1, :].float(), dim=-1)
                nlls.append(-logp.gather(-1, nxt).squeeze(-1).detach().cpu())
            cur = torch.cat([cur, nxt], dim=1)
    if lm.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if cur.shape[0] != tokens.shape[0] * repeats:  # no step taken: the prompts, repeated
        cur = cur.repeat_interleave(repeats, dim=0)
    return Generation(cur.cpu(), tokens.shape[1], use_cache, note, seconds, forwards, seed if do_sample else None,
                      {"do_sample": do_sample, "temperature": temperature if do_sample else None, "top_k": top_k,
                       "replaced": [list(x) for x in replaced], "max_new_tokens": max_new_tokens},
                      torch.stack(kept, dim=1) if kept else None, torch.stack(nlls, dim=1) if nlls else None)


def _repeat_rows(x, repeats: int):
    """Tensors (in tuples/lists) with each batch row repeated ``repeats`` times in place."""
    if isinstance(x, torch.Tensor):
        return x.repeat_interleave(repeats, dim=0)
    if isinstance(x, (tuple, list)):
        return type(x)(_repeat_rows(v, repeats) for v in x)
    return x


# -- measures -----------------------------------------------------------------------------------

def continuation_nll(lm, context, continuation, replaced: Assignment = (), means: torch.Tensor | None = None) -> torch.Tensor:
    """Per-token loss [b, c] of ``continuation`` [b, c] after ``context`` [b, p] (one full forward
    without cache, heads in ``replaced`` changed)."""
    ctx, cont = _as_batch(context), _as_batch(continuation)
    if ctx.shape[0] != cont.shape[0]:
        raise SemphaseError(f"{ctx.shape[0]} contexts but {cont.shape[0]} continuations; give one continuation per context.")
    full = torch.cat([ctx, cont], dim=1).to(lm.device)
    _, hooks = assignment_hooks(lm.bridge, [(int(l), int(h), str(k)) for l, h, k in replaced], means)
    with torch.no_grad(), lm.bridge.hooks(fwd_hooks=hooks):
        logits = lm.bridge(full, return_type="logits", use_cache=False)
    nll = token_nll(logits, full)  # [b, T-1]: position t predicts token t+1
    return nll[:, ctx.shape[1] - 1:].detach().cpu()


def judge_nll(judge_lm, source_tokenizer, prompts, candidates, batch: int | None = None) -> list[float]:
    """Mean per-token loss of each candidate under ``judge_lm`` (unmodified) after its prompt, both
    given as token ids of ``source_tokenizer`` (the generator's): decoded to text and encoded with
    the judge's own tokenizer (as they are when the judge uses the same tokenizer object), so that
    a model of another family can judge (science.md 14.7's independent judge). The prompt keeps its
    last tokens where the two would pass the judge's context. Rows are scored in right-padded
    batches: a causal model's loss at a position does not depend on the padding after it. NaN for
    a candidate whose text encodes to no token."""
    tok = judge_lm.tokenizer
    same = tok is source_tokenizer
    limit = n_ctx(judge_lm)
    rows = []
    for p, c in zip(_as_batch(prompts).tolist(), _as_batch(candidates).tolist()):
        if same:
            pi, ci = list(p), list(c)
        else:
            pi = list(tok.encode(source_tokenizer.decode(p), add_special_tokens=False))
            ci = list(tok.encode(source_tokenizer.decode(c), add_special_tokens=False))
        if limit is not None:
            ci = ci[:limit - 1]
            pi = pi[max(0, len(pi) + len(ci) - limit):]
        rows.append((pi, ci))
    longest = max((len(p) + len(c) for p, c in rows), default=1)
    step = batch or max(1, int(LOGITS_BYTES // (max(1, longest) * 4 * max(1, _vocab(judge_lm)))))
    out: list[float] = []
    for b0 in range(0, len(rows), step):
        part = rows[b0:b0 + step]
        width = max(2, max(len(p) + len(c) for p, c in part))
        ids = torch.zeros(len(part), width, dtype=torch.long)
        for j, (p, c) in enumerate(part):
            if p or c:
                ids[j, :len(p) + len(c)] = torch.tensor(p + c, dtype=torch.long)
        with torch.no_grad(), _quiet():
            logits = judge_lm.bridge(ids.to(judge_lm.device), return_type="logits", use_cache=False)
        nll = token_nll(logits, ids.to(judge_lm.device)).detach().cpu()  # position t predicts token t + 1
        for j, (p, c) in enumerate(part):
            first = max(len(p), 1)  # a candidate token with no token before it cannot be scored
            vals = nll[j, first - 1:len(p) + len(c) - 1]
            out.append(float(vals.double().mean()) if vals.numel() else float("nan"))
    return out


def ngrams(seq: Sequence[int], n: int) -> list[tuple]:
    seq = [int(x) for x in seq]
    return [tuple(seq[i:i + n]) for i in range(len(seq) - n + 1)]


def distinct_n(seq: Sequence[int], n: int = 2) -> float:
    """Distinct-n: unique n-grams over all n-grams of a token sequence (NaN if it has none)."""
    grams = ngrams(seq, n)
    return len(set(grams)) / len(grams) if grams else float("nan")


def bigram_f1(candidate: Sequence[int], reference: Sequence[int]) -> float:
    """F1 of the bigram multisets of a candidate and a reference (0 when they share none)."""
    c, r = Counter(ngrams(candidate, 2)), Counter(ngrams(reference, 2))
    if not c or not r:
        return 0.0
    both = sum((c & r).values())
    if both == 0:
        return 0.0
    p, rec = both / sum(c.values()), both / sum(r.values())
    return 2 * p * rec / (p + rec)


def _summary(values) -> dict:
    a = np.asarray(values, dtype=float)
    return {"mean": float(np.nanmean(a)), "median": float(np.nanmedian(a)), "std": float(np.nanstd(a)), "n": int(a.size)}


# -- best-of-N and self-refinement ----------------------------------------------------------------

def best_of_n(generator_lm, scorer_lm, prompts, references, n_candidates: int = 5, ns: Sequence[int] = (1, 2, 3, 5),
              new_tokens: int = 64, temperature: float = 0.8, top_k: int | None = None, seed: int = 0,
              replaced: Assignment = (), means: torch.Tensor | None = None, use_cache: bool = True,
              prompt_batch: int | None = None, *, own_scores: bool = False, with_reference: bool = True,
              judges: dict | None = None) -> dict:
    """Best-of-N (14.2 P3) for one condition (``replaced`` heads on ``generator_lm``).

    Per prompt i: ``n_candidates`` continuations of ``new_tokens`` sampled at ``temperature`` with
    the seed ``seed_for(seed, i)``; each scored by ``scorer_ppl`` (the scorer's perplexity of the
    candidate after its prompt: the original's selection metric), ``reference_f1`` (bigram F1 with
    the true continuation ``references[i]``) and ``distinct2``; per prompt also ``reference_nll``
    (the generator condition's mean loss on the true continuation). Best-of-N picks, among the first
    N candidates, the lowest ``scorer_ppl`` (the original's rule); the summary gives, for each N,
    the mean and median over prompts of the picked candidate's three measures.

    ``own_scores``: where the generator is the scorer (``scorer_lm is generator_lm``, no replaced
    head, no means), each candidate's scorer loss is taken from the generation's own steps
    (``keep_nll``) instead of a second forward of every candidate; the two agree up to the float
    noise between a cached step and a full forward (a machinery test bounds it). ``with_reference``
    False leaves out ``reference_nll`` (a caller that samples several seeds of one condition needs
    it once). ``judges``: ``{name: loaded model}`` of independent judges; each candidate gets
    ``judge_nll[name]``, its mean per-token loss under that model (:func:`judge_nll`), and the
    summary the picked candidate's.

    Prompts are generated ``prompt_batch`` at a time (default: as many as keep the first step's
    logits under :data:`LOGITS_BYTES`), each prompt's candidates drawn from its own generator, so
    the draws do not depend on the batch (up to floating-point noise of batched matmuls)."""
    P = _as_batch(prompts)
    R = _as_batch(references)
    if P.shape[0] != R.shape[0]:
        raise SemphaseError(f"{P.shape[0]} prompts but {R.shape[0]} true continuations; give one per prompt.")
    ns = sorted({int(n) for n in ns})
    if not ns or ns[0] < 1 or ns[-1] > n_candidates:
        raise SemphaseError(f"best-of-N sizes {ns} must lie in 1..{n_candidates} (the candidates sampled per prompt).")
    per_prompt = []
    seconds = 0.0
    cache_notes = set()
    judges = dict(judges or {})
    own = bool(own_scores) and scorer_lm is generator_lm and not list(replaced) and means is None
    span = P.shape[1] + new_tokens
    group = prompt_batch or max(1, int(LOGITS_BYTES // (n_candidates * span * 4 * max(1, _vocab(generator_lm)))))
    for g0 in range(0, P.shape[0], group):
        idx = list(range(g0, min(P.shape[0], g0 + group)))
        prompt = P[idx].repeat_interleave(n_candidates, dim=0)  # the candidates of each prompt, in a row
        rows = [(slice(j * n_candidates, (j + 1) * n_candidates), seed_for(seed, i)) for j, i in enumerate(idx)]
        gen = generate(generator_lm, P[idx], new_tokens, do_sample=True, temperature=temperature, top_k=top_k,
                       seed=seed, replaced=replaced, means=means, use_cache=use_cache, row_seeds=rows, keep_nll=own,
                       repeats=n_candidates)
        seconds += gen.seconds
        if gen.cache_note:
            cache_notes.add(gen.cache_note)
        cands_all = gen.new_tokens
        nll_all = gen.token_nll if own else continuation_nll(scorer_lm, prompt, cands_all)
        ref_all = continuation_nll(generator_lm, P[idx], R[idx], replaced, means).mean(dim=1) if with_reference else None
        judged = {name: judge_nll(jlm, generator_lm.tokenizer, prompt, cands_all) for name, jlm in judges.items()}
        for j, i in enumerate(idx):
            sl = rows[j][0]
            cands, nll = cands_all[sl], nll_all[sl]
            row = {
                "candidates": cands.tolist(),
                "scorer_ppl": torch.exp(nll.double().mean(dim=1)).tolist(),
                "reference_f1": [bigram_f1(c, R[i].tolist()) for c in cands.tolist()],
                "distinct2": [distinct_n(c) for c in cands.tolist()],
                "seed": seed_for(seed, i),
            }
            if ref_all is not None:
                row["reference_nll"] = float(ref_all[j])
            if judges:
                row["judge_nll"] = {name: v[sl.start:sl.stop] for name, v in judged.items()}
            per_prompt.append(row)
    summary = {}
    for n in ns:
        picks = [int(np.argmin(p["scorer_ppl"][:n])) for p in per_prompt]
        summary[str(n)] = {
            "scorer_ppl": _summary([p["scorer_ppl"][k] for p, k in zip(per_prompt, picks)]),
            "reference_f1": _summary([p["reference_f1"][k] for p, k in zip(per_prompt, picks)]),
            "distinct2": _summary([p["distinct2"][k] for p, k in zip(per_prompt, picks)]),
            "picked": picks,
        }
        if judges:
            summary[str(n)]["judge_nll"] = {name: _summary([p["judge_nll"][name][k] for p, k in zip(per_prompt, picks)])
                                            for name in judges}
    ref = [p["reference_nll"] for p in per_prompt] if with_reference else None
    return {
        "n_prompts": int(P.shape[0]), "n_candidates": n_candidates, "ns": ns, "new_tokens": new_tokens,
        "temperature": temperature, "top_k": top_k, "seed": seed, "replaced": [list(x) for x in replaced],
        "selection": "lowest scorer_ppl among the first N candidates (the original's rule)",
        "per_prompt": per_prompt, "best_of": summary,
        "reference_nll": _summary(ref) if ref is not None else None,
        "reference_ppl": float(math.exp(float(np.mean(ref)))) if ref is not None else None,
        "generation_seconds": seconds, "cache_notes": sorted(cache_notes),
        **({"scorer_scores": "the generation's own steps (cached forward)"} if own else {}),
        **({"judges": sorted(judges)} if judges else {}),
    }


def self_refine(lm, scorer_lm, prompts, iterations: int = 3, new_tokens: int = 64, replaced: Assignment = (),
                means: torch.Tensor | None = None, use_cache: bool = True) -> dict:
    """Self-refinement (14.2 P2) for one condition: each iteration greedily continues the running
    text by ``new_tokens``; after each, the scorer's perplexity over every token after the original
    prompt, and distinct-2 of that generated text (and of the iteration's own tokens). Iterations
    stop before the model's context is exceeded (the original stopped at n_ctx)."""
    P = _as_batch(prompts)
    limit = n_ctx(lm)
    text = P
    rows = []
    cache_notes = set()
    for it in range(1, iterations + 1):
        if limit is not None and text.shape[1] + new_tokens > limit:
            break
        gen = generate(lm, text, new_tokens, replaced=replaced, means=means, use_cache=use_cache)
        if gen.cache_note:
            cache_notes.add(gen.cache_note)
        text = gen.tokens
        generated = text[:, P.shape[1]:]
        nll = continuation_nll(scorer_lm, P, generated)
        ppl = torch.exp(nll.double().mean(dim=1)).tolist()
        d_all = [distinct_n(g) for g in generated.tolist()]
        d_it = [distinct_n(g) for g in gen.new_tokens.tolist()]
        rows.append({
            "iteration": it, "generated_tokens": int(generated.shape[1]),
            "ppl": ppl, "ppl_summary": _summary(ppl),
            "distinct2": d_all, "distinct2_summary": _summary(d_all),
            "distinct2_iteration": d_it, "distinct2_iteration_summary": _summary(d_it),
            "share_distinct2_below_half": float(np.mean(np.asarray(d_all) < 0.5)),
        })
    return {"n_prompts": int(P.shape[0]), "iterations": rows, "new_tokens": new_tokens,
            "iterations_requested": iterations, "replaced": [list(x) for x in replaced],
            "decoding": "greedy", "final_text": text[:, P.shape[1]:].tolist(), "cache_notes": sorted(cache_notes)}
