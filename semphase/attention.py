"""Replaced attention (science.md 12): the original's normalisations of the scores, and a
feature-map attention that can really be factorised.

Two families, both applied per query head (with grouped-query attention each query head is
replaced on its own; the key/value head it shares is read, never changed):

* **Normalisations of the scores** (the original's 10I-10L operators). ``S`` is what
  ``hook_attn_scores`` carries: the scaled scores QK^T/sqrt(d_head), causal mask applied. Masked
  entries (above the diagonal, or non-finite, or at the dtype's minimum) get weight 0 for every
  method, then, row by row over the keys:

  - ``softmax``: softmax(S) (the model's own operator, through the same replacement path: a
    plumbing check);
  - ``relu``: ReLU(S) / max(sum_k ReLU(S), 1e-8);
  - ``l1``: |S| / max(sum_k |S|, 1e-8);
  - ``identity``: S / max(sum_k |S|, 1e-8) (signed weights).

  A row with no positive score under ``relu`` (e.g. the first query when its one score is
  negative) gets all-zero weights: the head writes nothing at that position (the original's
  behaviour; no NaN). These operators still cost O(n^2 d): ReLU(QK^T) cannot be factorised.

* **Feature-map attention** (kernelisable): phi applied to Q and K separately,
  ``z_i = sum_{j<=i} (phi(q_i).phi(k_j)) v_j / max(sum_{j<=i} phi(q_i).phi(k_j), 1e-8)``, with
  phi(x) = elu(x) + 1 (``elu1``, always positive) or ReLU(x) (``relu``; a query whose features
  meet no key gets a zero output, as relu rows do). Q and K are scaled by the model's score scale
  to the power 1/2 first, so that phi = identity would give back the model's scores. It is computed
  in the factorised causal form (a running state S = sum phi(k) v^T and u = sum phi(k), in chunks:
  O(n d^2) plus a small intra-chunk term), which equals its quadratic form
  (:func:`feature_attention_quadratic`); the state also carries it across key/value-cache steps
  during generation.

The hooks read Q and K where the architecture exposes them: ``hook_rot_q``/``hook_rot_k`` when
they fire (Llama), else ``hook_q``/``hook_k`` rotated with ``hook_cos``/``hook_sin`` over the
first ``cos.shape[-1]`` dimensions of each head (rotate-half, GPT-NeoX's partial rotary), else
``hook_q``/``hook_k`` as they are (GPT-2). The first use on a layer checks that these Q and K give
back the layer's own scores (else a :class:`SemphaseError`: that architecture is not supported).
"""
from __future__ import annotations

import math
import weakref
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from .errors import SemphaseError

EPS = 1e-8  # the original's floor on a row's normaliser
NORMALISATIONS = ("softmax", "relu", "l1", "identity")
FEATURE_MAPS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "elu1": lambda x: F.elu(x) + 1.0,
    "relu": F.relu,
}
DEFAULT_CHUNK = 64  # positions per chunk of the factorised form


# -- the operators ------------------------------------------------------------------------------

def causal_allowed(q_len: int, kv_len: int, device=None) -> torch.Tensor:
    """[q_len, kv_len] bool: query i (the last q_len of kv_len positions) may see key j."""
    return torch.ones(q_len, kv_len, dtype=torch.bool, device=device).tril(diagonal=kv_len - q_len)


def valid_scores(scores: torch.Tensor) -> torch.Tensor:
    """Entries that carry a score: causally allowed, finite, and above the dtype's mask value."""
    q_len, kv_len = scores.shape[-2:]
    ok = causal_allowed(q_len, kv_len, scores.device) & torch.isfinite(scores)
    return ok & (scores > torch.finfo(scores.dtype).min / 2)


def normalise_scores(scores: torch.Tensor, method: str) -> torch.Tensor:
    """Attention weights [..., q, kv] from scores [..., q, kv] by ``method`` (module docstring).
    Masked entries get weight 0; no NaN is produced for any finite or masked input."""
    if method not in NORMALISATIONS:
        raise SemphaseError(f"unknown score normalisation {method!r}; use one of {', '.join(NORMALISATIONS)}.")
    valid = valid_scores(scores)
    s = torch.where(valid, scores, torch.zeros((), dtype=scores.dtype, device=scores.device))
    if method == "softmax":
        any_valid = valid.any(dim=-1, keepdim=True)
        w = torch.softmax(s.masked_fill(~valid, float("-inf")).masked_fill(~any_valid, 0.0), dim=-1)
        return torch.where(valid, w, torch.zeros((), dtype=w.dtype, device=w.device))
    if method == "relu":
        w = torch.relu(s)
        return w / w.sum(dim=-1, keepdim=True).clamp_min(EPS)
    if method == "l1":
        w = s.abs()
        return w / w.sum(dim=-1, keepdim=True).clamp_min(EPS)
    return s / s.abs().sum(dim=-1, keepdim=True).clamp_min(EPS)  # identity


def feature_map(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if name not in FEATURE_MAPS:
        raise SemphaseError(f"unknown feature map {name!r}; use one of {', '.join(FEATURE_MAPS)}.")
    return FEATURE_MAPS[name]


def feature_attention_quadratic(fq: torch.Tensor, fk: torch.Tensor, v: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """The quadratic form of feature-map attention: fq [..., n, d] (features of the last n of m
    positions), fk [..., m, d], v [..., m, dv] -> [..., n, dv]."""
    a = fq @ fk.transpose(-1, -2)
    a = a * causal_allowed(fq.shape[-2], fk.shape[-2], fq.device).to(a.dtype)
    return (a @ v) / a.sum(dim=-1, keepdim=True).clamp_min(eps)


def feature_attention_factorised(fq: torch.Tensor, fk: torch.Tensor, v: torch.Tensor, state=None,
                                 chunk: int = DEFAULT_CHUNK, eps: float = EPS):
    """The factorised causal form of feature-map attention: fq, fk [..., n, d] and v [..., n, dv]
    at the same n new positions; ``state`` = (S [..., d, dv], u [..., d]) sums over every earlier
    position (None: there is none). Returns (z [..., n, dv], the state after these positions).

    Chunk by chunk: z = (phi_q S + tril(phi_q phi_k^T) v) / (phi_q u + rowsum(tril(phi_q phi_k^T))),
    then S += phi_k^T v and u += sum phi_k. ``chunk`` = 1 is the pure recurrent form."""
    if fq.shape[-2] != fk.shape[-2] or fk.shape[-2] != v.shape[-2]:
        raise SemphaseError("the factorised feature-map attention needs queries, keys and values at the same "
                            "positions; pass earlier positions as its state.")
    lead = fk.shape[:-2]
    d, dv = fk.shape[-1], v.shape[-1]
    if state is None:
        S = torch.zeros(*lead, d, dv, dtype=v.dtype, device=v.device)
        u = torch.zeros(*lead, d, dtype=fk.dtype, device=fk.device)
    else:
        S, u = state
    n = fq.shape[-2]
    chunk = max(1, int(chunk))
    outs = []
    for s in range(0, n, chunk):
        q, k, vv = fq[..., s:s + chunk, :], fk[..., s:s + chunk, :], v[..., s:s + chunk, :]
        intra = (q @ k.transpose(-1, -2)).tril()
        num = q @ S + intra @ vv
        den = (q @ u.unsqueeze(-1)).squeeze(-1) + intra.sum(dim=-1)
        outs.append(num / den.unsqueeze(-1).clamp_min(eps))
        S = S + k.transpose(-1, -2) @ vv
        u = u + k.sum(dim=-2)
    return torch.cat(outs, dim=-2), (S, u)


# -- reading an attention layer through its hooks --------------------------------------------------

def _attn_hook(layer: int, what: str) -> str:
    return f"blocks.{int(layer)}.attn.{what}"


def score_scale(bridge, layer: int) -> float:
    """The factor the layer's scores carry (1/sqrt(d_head) unless the model says otherwise)."""
    attn = bridge.blocks[layer].attn
    orig = getattr(attn, "original_component", None)
    cfg = bridge.cfg
    d_head = int(cfg.d_head)
    scale = getattr(orig, "scaling", None)
    scale = float(scale) if isinstance(scale, (int, float)) else d_head ** -0.5
    if getattr(cfg, "scale_attn_by_inverse_layer_idx", False):
        scale /= float(layer + 1)
    return scale


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half rotary embedding of x [b, pos, heads, d] over its first cos.shape[-1] dims."""
    r = cos.shape[-1]
    cos = cos.unsqueeze(-2).to(x.dtype)
    sin = sin.unsqueeze(-2).to(x.dtype)
    xr, xp = x[..., :r], x[..., r:]
    x1, x2 = xr[..., : r // 2], xr[..., r // 2:]
    rotated = xr * cos + torch.cat((-x2, x1), dim=-1) * sin
    return torch.cat((rotated, xp), dim=-1)


_VERIFIED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


class LayerReader:
    """Collects one attention layer's Q, K, V and the query/key offset during a forward.

    ``hooks()`` gives the capture hooks (which leave the tensors unchanged); after they fired,
    ``qkv()`` returns rotated q [b, pos, H, d] and k, v [b, pos, H_kv, d], and ``offset`` the
    number of cached positions before the first query (0 without a key/value cache).
    """

    def __init__(self, bridge, layer: int):
        self.bridge = bridge
        self.layer = int(layer)
        self.scale = score_scale(bridge, layer)
        self.seen: dict[str, torch.Tensor] = {}
        self.offset = 0
        self.scores: torch.Tensor | None = None

    def hooks(self, keep_scores: bool = False) -> list[tuple[str, Callable]]:
        out = []
        names = self.bridge.hook_dict
        for what in ("hook_q", "hook_k", "hook_v", "hook_rot_q", "hook_rot_k", "hook_cos", "hook_sin"):
            name = _attn_hook(self.layer, what)
            if name in names:
                def grab(x, hook=None, what=what):
                    self.seen[what] = x
                    return x
                out.append((name, grab))

        def scores(x, hook=None):
            self.offset = int(x.shape[-1] - x.shape[-2])
            self.scores = x if keep_scores or self._needs_check(x) else None
            return x
        out.append((_attn_hook(self.layer, "hook_attn_scores"), scores))
        return out

    def _needs_check(self, scores: torch.Tensor) -> bool:
        done = _VERIFIED.setdefault(self.bridge, set())
        return self.layer not in done and scores.shape[-1] == scores.shape[-2]

    def qkv(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        seen = self.seen
        if "hook_q" not in seen or "hook_k" not in seen or "hook_v" not in seen:
            raise SemphaseError(f"layer {self.layer}'s attention fired no hook_q/hook_k/hook_v, which the "
                                "feature-map replacement reads; this architecture is not supported.")
        if "hook_rot_q" in seen and "hook_rot_k" in seen:
            q, k = seen["hook_rot_q"], seen["hook_rot_k"]
        elif "hook_cos" in seen and "hook_sin" in seen:
            q = _rotate(seen["hook_q"], seen["hook_cos"], seen["hook_sin"])
            k = _rotate(seen["hook_k"], seen["hook_cos"], seen["hook_sin"])
        else:
            q, k = seen["hook_q"], seen["hook_k"]
        return q, k, seen["hook_v"]

    def check_scores(self, q: torch.Tensor, k: torch.Tensor, heads: Sequence[int]) -> None:
        """Once per model and layer: the Q and K read here must give the layer's own scores."""
        if self.scores is None:
            return
        group = q.shape[2] // k.shape[2]
        heads = sorted(set(int(h) for h in heads))
        qh = q[:, :, heads].transpose(1, 2).float()
        kh = k[:, :, [h // group for h in heads]].transpose(1, 2).float()
        mine = (qh @ kh.transpose(-1, -2)) * self.scale
        theirs = self.scores[:, heads].float()
        valid = valid_scores(theirs)
        diff = (mine - theirs).abs().masked_fill(~valid, 0.0).max().item()
        # fp32: 1e-4 of the scores' scale; a bfloat16 or float16 model rounds its scores at its own precision (a wrong
        # rotary convention is off by the scores' own size, far above either bound)
        rel = max(1e-4, 8 * torch.finfo(q.dtype).eps)
        bound = rel * (1.0 + theirs.masked_fill(~valid, 0.0).abs().max().item())
        self.scores = None
        if diff > bound:
            raise SemphaseError(
                f"the feature-map replacement could not rebuild layer {self.layer}'s attention scores from its "
                f"query and key hooks (largest difference {diff:.2e}); this architecture's rotary convention is "
                "not supported.")
        _VERIFIED.setdefault(self.bridge, set()).add(self.layer)

    def clear(self) -> None:
        self.seen = {}


def _head_index(heads: Sequence[int], batch: int, batched: bool, device) -> torch.Tensor:
    """[batch, n_sel] query-head indices: every element the same heads, or element i heads[i]."""
    if batched:
        if len(heads) != batch:
            raise SemphaseError(f"a batch of single-head replacements needs one head per batch element "
                                f"({len(heads)} heads for a batch of {batch}).")
        return torch.tensor([[int(h)] for h in heads], device=device)
    return torch.tensor([list(map(int, heads))] * batch, device=device)


def pattern_hooks(bridge, layer: int, heads: Sequence[int], method: str, batched: bool = False) -> list:
    """Hooks that replace the softmax pattern of ``heads`` (query heads) of ``layer`` by
    ``normalise_scores(S, method)``; with ``batched``, batch element i replaces ``heads[i]`` alone."""
    if method not in NORMALISATIONS:
        raise SemphaseError(f"unknown score normalisation {method!r}; use one of {', '.join(NORMALISATIONS)}.")
    heads = [int(h) for h in heads]
    stash: dict[str, torch.Tensor] = {}

    def scores(s, hook=None):
        stash["s"] = s
        return s

    def pattern(p, hook=None):
        if "s" not in stash:
            raise SemphaseError(f"layer {layer}'s attention fired hook_pattern without hook_attn_scores; the score "
                                "normalisations cannot replace this architecture's attention.")
        s = stash.pop("s")
        b = p.shape[0]
        rows = torch.arange(b, device=p.device).unsqueeze(1)
        idx = _head_index(heads, b, batched, p.device)
        p[rows, idx] = normalise_scores(s[rows, idx], method).to(p.dtype)
        return p

    return [(_attn_hook(layer, "hook_attn_scores"), scores), (_attn_hook(layer, "hook_pattern"), pattern)]


def feature_map_hooks(bridge, layer: int, heads: Sequence[int], fmap: str = "elu1", form: str = "factorised",
                      batched: bool = False, state: dict | None = None, chunk: int = DEFAULT_CHUNK) -> list:
    """Hooks that replace ``heads`` (query heads) of ``layer`` by feature-map attention, written at
    ``hook_z`` (the head's output before W_O).

    ``form``: ``factorised`` (the kernelised form, which carries its running sums across
    key/value-cache steps in ``state``, a dict the caller keeps for one generation) or
    ``quadratic`` (the same operator as an n x n matrix; no cache)."""
    phi = feature_map(fmap)
    if form not in ("factorised", "quadratic"):
        raise SemphaseError(f"unknown feature-map attention form {form!r}; use factorised or quadratic.")
    heads = [int(h) for h in heads]
    reader = LayerReader(bridge, layer)
    root = math.sqrt(reader.scale)
    state = {} if state is None else state

    def replace(z, hook=None):
        q, k, v = reader.qkv()
        reader.check_scores(q, k, heads)
        b = z.shape[0]
        group = q.shape[2] // k.shape[2]
        rows = torch.arange(b, device=z.device).unsqueeze(1)
        idx = _head_index(heads, b, batched, z.device)
        qs = q.transpose(1, 2)[rows, idx]  # [b, n_sel, pos, d]
        ks = k.transpose(1, 2)[rows, idx // group]
        vs = v.transpose(1, 2)[rows, idx // group]
        fq, fk = phi(qs * root), phi(ks * root)
        if form == "quadratic":
            if reader.offset:
                raise SemphaseError("the quadratic form of the feature-map attention cannot use a key/value cache; "
                                    "generate without the cache.")
            out = feature_attention_quadratic(fq, fk, vs)
        else:
            prev = state.get(layer)
            if reader.offset == 0:
                prev = None
            elif prev is None or prev[0] != reader.offset:
                raise SemphaseError(
                    f"the feature-map attention state of layer {layer} covers "
                    f"{0 if prev is None else prev[0]} positions but the key/value cache holds {reader.offset}; "
                    "start each generation with a fresh state.")
            out, new = feature_attention_factorised(fq, fk, vs, None if prev is None else prev[1], chunk)
            state[layer] = (reader.offset + q.shape[1], new)
        z.transpose(1, 2)[rows, idx] = out.to(z.dtype)
        reader.clear()
        return z

    return reader.hooks() + [(_attn_hook(layer, "hook_z"), replace)]
