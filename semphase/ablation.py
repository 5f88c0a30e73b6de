"""Head ablation at ``blocks.{l}.attn.hook_z`` and perplexity, with a sweep engine that
does not recompute what an ablation cannot change.

``hook_z`` is the per-head attention output before W_O, shape [batch, pos, head, d_head].
Zero-ablation sets one head's slice to 0 at every position; mean-ablation sets it to a mean
vector estimated on a named set of tokens (which may be disjoint from the evaluated ones).
Attention replacements (:mod:`semphase.attention`: the original's relu/l1/identity normalisations
of the scores, softmax through the same path, and a kernelisable feature-map attention) are
intervention kinds too (:data:`INTERVENTIONS`); their hooks sit on ``hook_attn_scores``/``hook_pattern``
or on Q/K/V and ``hook_z`` of the edited layer, so the engine's prefix reuse, the sweeps' caching
and resume apply to them unchanged.

Inside the engine's forwards the Bridge's attention softmax runs without its guard for fully masked rows
(:func:`unguarded_softmax`): the engine's chunks are unpadded and causal, so no row is fully masked, the guard
changes no value (the losses are bit-identical, tested) and it cost about a fifth of a CPU forward (``bench
softmax``); a row that did become fully masked would give a non-finite loss, which stops the run by name.

The plain way (the original's) runs one full forward per ablated head. The engine instead
runs each chunk once, capturing the residual stream (and the arguments) entering every
block, and then, for an ablation whose earliest touched layer is ``k``, runs only blocks
``k..L-1``, the final norm and the unembedding. The Bridge's own ``start_at_layer`` still
executes blocks ``0..k-1`` internally, so it saves nothing; the engine calls the Bridge's
block modules directly, so every Bridge hook still fires. Heads of one layer can be batched
(``head_batch``) where that pays (on GPUs; on two CPU cores it does not).

Per-token losses are kept as sums over blocks of :data:`BLOCK` predicted tokens, so
perplexity over any subset of chunks, and bootstrap intervals over blocks, need no new
forward pass.
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import torch

from .errors import NonFiniteLoss, SemphaseError
from .hooks import attn_z

BLOCK = 64  # predicted tokens per bootstrap block

Head = tuple[int, int]


def hook_z_name(layer: int) -> str:
    """Where the engine intervenes: :func:`semphase.hooks.attn_z`."""
    return attn_z(layer)


def token_nll(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of logits[:, :-1] against tokens[:, 1:], per token: [batch, T-1]."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    return -logp.gather(-1, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)


def block_sums(nll_row: torch.Tensor) -> list[float]:
    """Sums of one chunk's per-token losses over consecutive blocks of BLOCK tokens."""
    values = nll_row.detach().to("cpu", torch.float64)
    return [float(values[i:i + BLOCK].sum()) for i in range(0, values.numel(), BLOCK)]


def block_counts(n_predicted: int) -> list[int]:
    return [min(BLOCK, n_predicted - i) for i in range(0, n_predicted, BLOCK)]


def check_finite(nll: torch.Tensor, step: str) -> None:
    if not torch.isfinite(nll).all():
        bad = nll[~torch.isfinite(nll)].flatten()[0].item()
        raise NonFiniteLoss(
            f"the loss became {bad} at step {step}; the model or the ablation produced "
            "non-finite logits (check the device's numerics, or run with --device cpu)."
        )


class Intervention:
    """One kind of intervention on ``hook_z`` (a row of :data:`INTERVENTIONS`).

    ``apply(z, heads, params)`` changes ``heads`` of every batch element; ``apply_each(z, heads,
    params)`` changes ``heads[i]`` in batch element i alone (a batch of single-head ablations).
    ``params`` is this layer's per-head parameter (the means [H, d_head] for mean-ablation), or None.
    A new kind (replaced attention patterns, low-rank weights) is a new subclass and a new row;
    one that needs hooks other than ``hook_z`` overrides :meth:`hooks`.
    """

    name = ""
    needs = ""  # what params must hold, in words ("" for nothing)
    supports_kv_cache = True  # whether generation with a key/value cache may use this kind
    description = ""

    def hooks(self, bridge, layer: int, heads: Sequence[int], params=None, batched: bool = False,
              state: dict | None = None) -> list[tuple[str, Callable]]:
        """The (hook name, hook) pairs that apply this kind to ``heads`` of ``layer``."""
        return [(hook_z_name(layer), ablation_hook(self.name, heads, params, batched))]

    def value(self, z: torch.Tensor, heads, params):
        raise NotImplementedError

    def apply(self, z: torch.Tensor, heads: list[int], params) -> torch.Tensor:
        z[:, :, heads, :] = self.value(z, heads, params)
        return z

    def apply_each(self, z: torch.Tensor, heads: list[int], params) -> torch.Tensor:
        for i, h in enumerate(heads):
            z[i, :, h, :] = self.value(z, h, params)
        return z


class ZeroAblation(Intervention):
    name = "zero"

    def value(self, z, heads, params):
        return 0.0


class MeanAblation(Intervention):
    name = "mean"
    needs = "the means of this layer's heads"

    def value(self, z, heads, params):
        return params[heads].to(z.dtype)


class AttentionReplacement(Intervention):
    """A head's attention replaced by another operator (:mod:`semphase.attention`): the original's
    normalisations of the scores (written at ``hook_pattern``) or a feature-map attention (written
    at ``hook_z``). Each query head is replaced on its own, also under grouped-query attention."""

    def value(self, z, heads, params):
        raise TypeError(f"{self.name} replaces a head's attention; use its hooks()")


class ScoreNormalisation(AttentionReplacement):
    def __init__(self, method: str):
        self.name = self.method = method
        self.description = {
            "softmax": "softmax(S) through the replacement path (equals the model)",
            "relu": "ReLU(S) / max(sum ReLU(S), 1e-8), the original's relu attention",
            "l1": "|S| / max(sum |S|, 1e-8)",
            "identity": "S / max(sum |S|, 1e-8), signed weights",
        }[method]

    def hooks(self, bridge, layer, heads, params=None, batched=False, state=None):
        from .attention import pattern_hooks

        return pattern_hooks(bridge, layer, heads, self.method, batched)


class FeatureMapAttention(AttentionReplacement):
    def __init__(self, name: str, fmap: str, form: str):
        self.name, self.fmap, self.form = name, fmap, form
        self.supports_kv_cache = form == "factorised"
        self.description = (f"phi(Q) phi(K)^T attention, phi = {'elu(x)+1' if fmap == 'elu1' else 'ReLU(x)'}, "
                            f"{'factorised causal form (kernelised)' if form == 'factorised' else 'quadratic form'}")

    def hooks(self, bridge, layer, heads, params=None, batched=False, state=None):
        from .attention import feature_map_hooks

        return feature_map_hooks(bridge, layer, heads, self.fmap, self.form, batched, state)


INTERVENTIONS: dict[str, Intervention] = {
    "zero": ZeroAblation(), "mean": MeanAblation(),
    **{m: ScoreNormalisation(m) for m in ("softmax", "relu", "l1", "identity")},
    "kernel": FeatureMapAttention("kernel", "elu1", "factorised"),
    "kernel_relu": FeatureMapAttention("kernel_relu", "relu", "factorised"),
    "kernel_quadratic": FeatureMapAttention("kernel_quadratic", "elu1", "quadratic"),
}
REPLACEMENTS = tuple(k for k, v in INTERVENTIONS.items() if isinstance(v, AttentionReplacement))


def intervention(kind: str) -> Intervention:
    if kind not in INTERVENTIONS:
        raise SemphaseError(f"unknown intervention kind {kind!r}; use one of {', '.join(INTERVENTIONS)}.")
    return INTERVENTIONS[kind]


def intervention_hooks(bridge, kind: str, layer: int, heads: Sequence[int], params=None, batched: bool = False,
                       state: dict | None = None) -> list[tuple[str, Callable]]:
    """The hooks that apply intervention ``kind`` to ``heads`` of ``layer`` (any kind: hook_z
    ablations and attention replacements). ``state``: a dict kept across the forwards of one
    generation (the feature-map attention's running sums)."""
    kind_ = intervention(kind)
    if kind_.needs and params is None:
        raise SemphaseError(f"{kind}-ablation needs {kind_.needs}.")
    return kind_.hooks(bridge, int(layer), [int(h) for h in heads], params, batched, state)


def assignment_hooks(bridge, assignment: Iterable[tuple[int, int, str]], means: torch.Tensor | None = None,
                     state: dict | None = None) -> tuple[int | None, list[tuple[str, Callable]]]:
    """Hooks for heads that each carry their own kind, ``(layer, head, kind)``: the earliest layer
    touched (None for none) and the hooks, one set per (layer, kind)."""
    grouped: dict[tuple[int, str], list[int]] = {}
    for layer, head, kind in assignment:
        grouped.setdefault((int(layer), str(kind)), []).append(int(head))
    hooks: list = []
    for (layer, kind), heads in sorted(grouped.items()):
        hooks += intervention_hooks(bridge, kind, layer, heads, None if means is None else means[layer], state=state)
    return (min(l for l, _ in grouped) if grouped else None), hooks


def ablation_hook(kind: str, heads: Sequence[int], means: torch.Tensor | None = None,
                  batched: bool = False) -> Callable:
    """A hook_z hook that applies intervention ``kind`` to ``heads``.

    With ``batched``, batch element i changes ``heads[i]`` alone; otherwise every batch
    element changes all of ``heads``.
    """
    if kind not in INTERVENTIONS:
        raise ValueError(f"unknown ablation kind {kind!r}; known: {', '.join(INTERVENTIONS)}")
    kind_ = INTERVENTIONS[kind]
    if isinstance(kind_, AttentionReplacement):
        raise ValueError(f"{kind} replaces a head's attention, not its hook_z output; build its hooks with "
                         "intervention_hooks()")
    if kind_.needs and means is None:
        raise ValueError(f"{kind}-ablation needs {kind_.needs}")
    heads = list(heads)

    def hook(z: torch.Tensor, hook=None) -> torch.Tensor:
        return kind_.apply_each(z, heads, means) if batched else kind_.apply(z, heads, means)

    return hook


def group_by_layer(heads: Iterable[Head]) -> dict[int, list[int]]:
    grouped: dict[int, list[int]] = {}
    for layer, head in heads:
        grouped.setdefault(int(layer), []).append(int(head))
    return grouped


@dataclass
class Capture:
    """What entered each block during one chunk's clean forward, and the clean loss."""

    tokens: torch.Tensor  # [1, T]
    inputs: dict[int, tuple[tuple, dict]]
    baseline_nll: torch.Tensor  # [T-1]


def _softmax(scores: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    return torch.nn.functional.softmax(scores, dim=-1, dtype=dtype)


def _no_scrub(pattern: torch.Tensor) -> torch.Tensor:
    return pattern


@contextmanager
def unguarded_softmax(bridge, enabled: bool = True):
    """While inside, each attention of ``bridge`` in TransformerLens's compatibility mode takes the plain softmax
    instead of its guarded one: the guard (``_masked_softmax``: a search for rows whose every score is -inf, two
    masked copies; ``_scrub_compatibility_pattern_nans``: a search for NaN) is there for left-padded batches and
    changes nothing where every query sees a key, as in the engine's unpadded causal chunks. Attentions without
    these methods (another TransformerLens version) are left as they are. Yields the number replaced."""
    patched = []
    if enabled:
        for block in getattr(bridge, "blocks", []):
            attn = getattr(block, "attn", None)
            if (attn is not None and getattr(attn, "compatibility_mode", False)
                    and "_masked_softmax" not in vars(attn)  # not already replaced by an enclosing call
                    and callable(getattr(type(attn), "_masked_softmax", None))
                    and callable(getattr(type(attn), "_scrub_compatibility_pattern_nans", None))):
                attn._masked_softmax = _softmax
                attn._scrub_compatibility_pattern_nans = _no_scrub
                patched.append(attn)
    try:
        yield len(patched)
    finally:
        for attn in patched:
            del attn._masked_softmax
            del attn._scrub_compatibility_pattern_nans


class AblationEngine:
    """Ablated perplexities for a loaded model (see the module docstring).

    ``guarded_softmax``: keep TransformerLens's guarded softmax in the engine's forwards (the plain way of
    ``bench softmax``); by default the engine runs :func:`unguarded_softmax`, whose losses are identical."""

    def __init__(self, lm, head_batch: int = 1, guarded_softmax: bool = False):
        self.lm = lm
        self.bridge = lm.bridge
        self.device = lm.device
        self.n_layers = lm.n_layers
        self.n_heads = lm.n_heads
        self.head_batch = max(1, int(head_batch))
        self.guarded_softmax = guarded_softmax
        self.forwards = 0.0  # work done, in units of one full forward of one chunk

    # -- the plain way ------------------------------------------------------------------
    def forward_nll(self, chunk: torch.Tensor, fwd_hooks: Sequence = ()) -> torch.Tensor:
        """Per-token loss of one chunk [T] through a full ``run_with_hooks`` forward."""
        tokens = chunk.view(1, -1).to(self.device)
        with torch.no_grad():
            logits = self.bridge.run_with_hooks(tokens, fwd_hooks=list(fwd_hooks), use_cache=False)
        self.forwards += 1
        return token_nll(logits, tokens)[0]

    # -- the engine ----------------------------------------------------------------------
    def capture(self, chunk: torch.Tensor) -> Capture:
        """One clean forward that records each block's input arguments."""
        tokens = chunk.view(1, -1).to(self.device)
        inputs: dict[int, tuple[tuple, dict]] = {}
        handles = []
        for layer in range(self.n_layers):
            def pre(module, args, kwargs, layer=layer):
                inputs[layer] = (tuple(args), dict(kwargs))
            handles.append(self.bridge.blocks[layer].register_forward_pre_hook(pre, with_kwargs=True))
        try:
            with torch.no_grad(), unguarded_softmax(self.bridge, not self.guarded_softmax):
                logits = self.bridge(tokens, use_cache=False)
        finally:
            for handle in handles:
                handle.remove()
        self.forwards += 1
        nll = token_nll(logits, tokens)[0]
        check_finite(nll, "baseline (no ablation)")
        return Capture(tokens, inputs, nll)

    def _hidden(self, cap: Capture, layer: int) -> torch.Tensor:
        args, kwargs = cap.inputs[layer]
        return args[0] if args else kwargs["hidden_states"]

    def resume_nll(self, cap: Capture, start: int, fwd_hooks: Sequence, batch: int = 1) -> torch.Tensor:
        """Per-token loss [batch, T-1] running blocks ``start..L-1`` from the captured input."""
        x = self._hidden(cap, start)
        if batch > 1:
            x = x.expand(batch, *x.shape[1:]).clone()
        with torch.no_grad(), self.bridge.hooks(fwd_hooks=list(fwd_hooks)), \
                unguarded_softmax(self.bridge, not self.guarded_softmax):
            for layer in range(start, self.n_layers):
                args, kwargs = cap.inputs[layer]
                kwargs = {k: v for k, v in kwargs.items() if k != "hidden_states"}
                out = self.bridge.blocks[layer](x, *args[1:], **kwargs)
                x = out[0] if isinstance(out, tuple) else out
            logits = self.bridge.unembed(self.bridge.ln_final(x))
        self.forwards += batch * (self.n_layers - start) / self.n_layers
        return token_nll(logits, cap.tokens.expand(batch, -1))

    def ablated_nll(self, cap: Capture, heads: Sequence[Head], kind: str,
                    means: torch.Tensor | None = None, step: str = "") -> torch.Tensor:
        """Per-token loss [T-1] with all ``heads`` ablated at once."""
        if not heads:
            return cap.baseline_nll
        grouped = group_by_layer(heads)
        hooks = [hook for l, hs in sorted(grouped.items())
                 for hook in intervention_hooks(self.bridge, kind, l, hs, None if means is None else means[l])]
        nll = self.resume_nll(cap, min(grouped), hooks)[0]
        check_finite(nll, step or f"{kind}-ablation of {len(heads)} head(s)")
        return nll

    def assigned_nll(self, cap: Capture, assignment: Sequence[tuple[int, int, str]],
                     means: torch.Tensor | None = None, step: str = "") -> torch.Tensor:
        """Per-token loss [T-1] with each head ``(layer, head, kind)`` changed by its own kind at
        once (the original's "mixed" linearisation: each head its best method)."""
        start, hooks = assignment_hooks(self.bridge, assignment, means)
        if start is None:
            return cap.baseline_nll
        nll = self.resume_nll(cap, start, hooks)[0]
        check_finite(nll, step or f"{len(assignment)} head(s) changed, each by its own kind")
        return nll

    def layer_single_nll(self, cap: Capture, layer: int, kind: str,
                         means: torch.Tensor | None = None,
                         heads: Sequence[int] | None = None) -> list[torch.Tensor]:
        """Per-token losses [T-1] for each head of ``layer`` ablated alone."""
        heads = list(range(self.n_heads)) if heads is None else list(heads)
        layer_means = None if means is None else means[layer]
        out: list[torch.Tensor] = []
        for i in range(0, len(heads), self.head_batch):
            group = heads[i:i + self.head_batch]
            hooks = intervention_hooks(self.bridge, kind, layer, group, layer_means, batched=len(group) > 1)
            nll = self.resume_nll(cap, layer, hooks, batch=len(group))
            for j, h in enumerate(group):
                check_finite(nll[j], f"{kind}-ablation of L{layer}H{h}")
                out.append(nll[j])
        return out

    # -- means -------------------------------------------------------------------------
    def hook_z_sums(self, chunk: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Sum over positions of hook_z for every layer: ([L, H, d_head] float64, count)."""
        sums = torch.zeros(self.n_layers, self.n_heads, self.lm.d_head, dtype=torch.float64)
        hooks = []
        for layer in range(self.n_layers):
            def acc(z, hook=None, layer=layer):
                sums[layer] += z.detach().to("cpu", torch.float64).sum(dim=(0, 1))
                return z
            hooks.append((hook_z_name(layer), acc))
        tokens = chunk.view(1, -1).to(self.device)
        with torch.no_grad():
            self.bridge.run_with_hooks(tokens, fwd_hooks=hooks, use_cache=False)
        self.forwards += 1
        return sums, int(tokens.numel())


def ppl_from(nll_sum: float, count: int) -> float:
    return math.exp(nll_sum / count)


class Timer:
    def __init__(self):
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start
