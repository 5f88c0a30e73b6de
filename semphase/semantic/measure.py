"""Residual streams at the target token, directions and the order parameter σ (science.md 0.2, 0.4).

* :func:`residuals` - φ_i at the target for i = 0..L (i = 0: ``blocks.0.hook_resid_pre``;
  i >= 1: ``blocks.{i-1}.hook_resid_post``), one ``run_with_cache(names_filter=...)`` per
  batch of prompts. Prompts of one batch are right-padded: the padding comes after every
  target, so under the causal mask it cannot reach the target (the property claim C1 tests);
  the C1 pairs themselves run one prompt at a time, unpadded.
* :class:`ResidualStore` - those residuals cached in an :class:`~semphase.cache.EvidenceStore`
  entry keyed by model, weights sha256, processing, device type, stimuli sha256,
  tokenization and :data:`semphase.MEASUREMENT_VERSION`; one unit per word (float32 bytes,
  base64), so a rerun does no forward pass.
* :func:`contrastive_direction`, :func:`loo_directions`, :func:`split_direction`,
  :func:`random_unit_directions` - directions; :func:`sigma_v2`, :func:`sigma_v1`,
  :func:`jumps` - the order parameter and per-block jumps Δσ_j = σ[j+1] - σ[j].
* :func:`position_fit`, :func:`adjust_for_position`, :func:`position_record` - the target
  position of a word whose graded prompts are not length-matched: σ moved, per layer, to the word's
  mean target position (:data:`POSITION_CONTROL`), and the per-word check that h's effect survives
  the position covariate. :class:`WordData` applies it (``sigma``, nulls, bootstrap rows);
  a length-matched word is left exactly as measured.

Nulls (shuffled-sense splits, random unit directions) are vector operations on the stored
residuals: no new forward passes.
"""
from __future__ import annotations

import base64
import sys
import functools
import time
from typing import Sequence

import numpy as np
import torch

from ..cache import EvidenceStore
from ..hooks import depth_residuals

KIND = "semantic_residuals"


def hook_names(n_layers: int) -> list[str]:
    """The L+1 hooks of science.md 0.2, in order i = 0..L."""
    return depth_residuals(n_layers)


def say(progress: bool, text: str) -> None:
    """A progress line on stderr, when asked for."""
    if progress:
        print(text, file=sys.stderr, flush=True)


def stratified_rows(levels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Prompt indices resampled with replacement within each level (the bootstrap over prompts)."""
    out = []
    for k in np.unique(levels):
        idx = np.flatnonzero(levels == k)
        out.append(rng.choice(idx, size=idx.size, replace=True))
    return np.concatenate(out)


def two_stage_rows(levels: Sequence[np.ndarray], rng: np.random.Generator) -> list[tuple[int, np.ndarray]]:
    """One draw of the two-stage bootstrap over words and prompts: the words (indices into
    ``levels``, one array of prompt levels per word) resampled with replacement, then, inside
    each drawn word, its prompts resampled within levels (:func:`stratified_rows`). A word drawn
    twice gets two independent prompt resamples. Returns ``(word index, prompt rows)`` per slot."""
    idx = rng.integers(0, len(levels), size=len(levels))
    return [(int(w), stratified_rows(np.asarray(levels[w]), rng)) for w in idx]


TWO_STAGE_UNIT = "words (with replacement), then prompts within levels inside each drawn word"


def design_h(levels: np.ndarray) -> np.ndarray:
    """h = level/4: the context strength by design, independent of σ (strong A +1, strong B -1,
    also where a word's file lacks a level or its prompts were dropped)."""
    from .stimuli import LEVELS

    return np.asarray(levels, float) / float(max(LEVELS))


# -- the target position, where a word is not length-matched --------------------------------------

POSITION_CONTROL = ("regression adjustment within the word: per layer i, OLS of σ_i on 1, h = level/4 and the target "
                    "position over the word's graded prompts; σ_i(p) - ĉ_i·(position(p) - mean position), so every "
                    "prompt's σ is moved to the word's mean target position (a layer whose σ_i does not vary across "
                    "the word's prompts is left as it is); bootstrap replicates refit ĉ_i on the resampled prompts")
POSITION_CONTROL_SHORT = ("regression adjustment within the word: σ_i moved to the word's mean target position with "
                          "the position coefficient of the OLS of σ_i on h = level/4 and the target position, per layer")
POSITION_NONE = "none needed: the word is length-matched (one token count, so one target position)"
POSITION_NOT_SEPARABLE = ("none possible: the target position is a linear function of the level over the word's "
                          "graded prompts, so a position effect cannot be told from a level effect; σ is used as measured")
COLLINEAR_WARNING = 0.9  # |corr(h, position)| above this: the adjustment is imprecise (said per word)


def position_fit(h: np.ndarray, position: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The within-word position adjustment of :data:`POSITION_CONTROL` for prompts with design
    ``h`` and target ``position``: ``(weights [n], centred positions [n])``, where the weights give
    the position coefficient ĉ = weights · σ of the OLS of σ on [1, h, position]. None where the
    position is constant (length-matched: nothing to control) or the design has rank < 3 (position
    not separable from h)."""
    pos = np.asarray(position, float)
    if pos.size == 0 or np.ptp(pos) == 0:
        return None
    Z = np.column_stack([np.ones_like(pos), np.asarray(h, float), pos])
    if np.linalg.matrix_rank(Z) < 3:
        return None
    return np.linalg.pinv(Z)[2], pos - pos.mean()


def adjust_for_position(sigma: np.ndarray, fit: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """σ [..., n prompts, k] moved to the mean target position (:func:`position_fit`), column by
    column (k layers, or k null directions); ``sigma`` itself where ``fit`` is None. A column that
    does not vary across the prompts (i = 0 where the embedding carries no position) is left exactly
    as it is."""
    if fit is None:
        return sigma
    weights, centred = fit
    s = np.asarray(sigma, np.float64)
    c = np.einsum("n,...nk->...k", weights, s)
    scale = np.maximum(1.0, np.abs(s).max(-2))
    flat = np.ptp(s, axis=-2) <= 1e-12 * scale
    c = np.where(flat, 0.0, c)
    return s - centred[:, None] * c[..., None, :]


def _ols_h(y: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coefficients [p, k], two-sided t-test p-values [p, k]) of OLS of each column of y [n, k] on X [n, p]."""
    from scipy import stats as sps

    n, k = X.shape
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ beta
    df = n - k
    if df <= 0:
        return beta, np.full_like(beta, np.nan)
    s2 = (resid ** 2).sum(0) / df
    se = np.sqrt(np.outer(np.diag(np.linalg.pinv(X.T @ X)), s2))
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(se > 0, beta / np.where(se > 0, se, 1.0), np.nan)
    return beta, 2 * sps.t.sf(np.abs(t), df)


def position_record(wd: "WordData") -> dict:
    """What one word's evidence says about its target position: length-matched or not, the token
    counts and positions, the control applied, and (where it is applied) the per-word check that the
    level effect survives the position covariate: per layer, h's OLS slope alone and h's coefficient
    with the position beside it (two-sided p, n - 3 df)."""
    pos = wd.positions
    n_tok = wd.n_tokens
    rec = {"length_matched": bool(wd.length_matched), "n_tokens": [int(n_tok.min()), int(n_tok.max())],
           "target_position": [int(pos.min()), int(pos.max())], "n_positions": int(len(set(pos.tolist())))}
    if wd.length_matched:
        return {**rec, "control": "none", "method": POSITION_NONE}
    h = wd.h
    rec["corr_h_position"] = float(np.corrcoef(h, pos)[0, 1]) if np.ptp(h) > 0 else None
    rec["corr_abs_h_position"] = float(np.corrcoef(np.abs(h), pos)[0, 1]) if np.ptp(np.abs(h)) > 0 else None
    rec["collinear"] = bool(rec["corr_h_position"] is not None and abs(rec["corr_h_position"]) > COLLINEAR_WARNING)
    if wd.position_fit is None:
        return {**rec, "control": "not separable", "method": POSITION_NOT_SEPARABLE}
    y = wd.sigma_raw
    ones = np.ones_like(h)
    b_raw, p_raw = _ols_h(y, np.column_stack([ones, h]))
    b_adj, p_adj = _ols_h(y, np.column_stack([ones, h, pos]))
    sig_raw, sig_adj = p_raw[1] < 0.05, p_adj[1] < 0.05
    survives = sig_adj & (np.sign(b_adj[1]) == np.sign(b_raw[1]))
    return {**rec, "control": "adjusted", "method": POSITION_CONTROL,
            "h_slope_raw": b_raw[1].tolist(), "h_p_raw": p_raw[1].tolist(),
            "h_coef_adjusted": b_adj[1].tolist(), "h_p_adjusted": p_adj[1].tolist(),
            "position_coef": b_adj[2].tolist(), "position_p": p_adj[2].tolist(),
            "n_layers": int(len(survives)), "n_layers_h_significant_raw": int(sig_raw.sum()),
            "n_layers_h_significant_adjusted": int(sig_adj.sum()),
            "h_survives_final_layer": bool(survives[-1]),
            "check": "h significant (p < 0.05) with the position covariate and of the same sign as without it"}


def position_note(ev: dict) -> str:
    """What a claim that compares levels adds to its statement when some measured word is not
    length-matched (nothing otherwise)."""
    n = len((ev.get("position_control") or {}).get("words_not_length_matched") or [])
    if not n:
        return ""
    return (f"; for the {n} measured word{'s' if n > 1 else ''} not length-matched, σ is first moved to the word's mean "
            "target position (per layer, a within-word OLS of σ on h = level/4 and the target position; see the report)")


def with_position_note(statement):
    """A rule's statement (text or a function of the evidence) with :func:`position_note` appended."""
    def text(ev: dict) -> str:
        return (statement(ev) if callable(statement) else statement) + position_note(ev)
    return text


def position_summary(data: dict) -> dict:
    """The evidence's top-level record of position control over the measured words."""
    not_matched = [w for w, wd in data.items() if not wd.length_matched]
    return {"n_words": len(data), "n_length_matched": len(data) - len(not_matched),
            "words_not_length_matched": not_matched,
            "words_not_separable": [w for w in not_matched if data[w].position_fit is None],
            "method": POSITION_CONTROL, "length_matched_method": POSITION_NONE}


def _pad_id(tokenizer) -> int:
    for name in ("pad_token_id", "eos_token_id", "bos_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return 0


def residuals(lm, ids: Sequence[Sequence[int]], positions: Sequence[int], final_only: Sequence[bool] | None = None,
              batch_size: int = 64, pad: bool = True) -> list[np.ndarray]:
    """φ at each prompt's target position: [L+1, d] per prompt (or [1, d], the final layer only,
    where ``final_only[k]``). ``pad=False`` runs every prompt alone, unpadded."""
    L = lm.n_layers
    names = hook_names(L)
    out: list[np.ndarray | None] = [None] * len(ids)
    order = sorted(range(len(ids)), key=lambda k: len(ids[k]))
    groups: list[list[int]] = []
    if pad:
        for start in range(0, len(order), batch_size):
            groups.append(order[start:start + batch_size])
    else:
        groups = [[k] for k in range(len(ids))]
    pad_id = _pad_id(lm.tokenizer)
    for group in groups:
        width = max(len(ids[k]) for k in group)
        batch = torch.full((len(group), width), pad_id, dtype=torch.long)
        for row, k in enumerate(group):
            if positions[k] >= len(ids[k]):
                raise ValueError(f"target position {positions[k]} outside a prompt of {len(ids[k])} tokens")
            batch[row, : len(ids[k])] = torch.tensor(list(ids[k]), dtype=torch.long)
        with torch.inference_mode():
            _, cache = lm.bridge.run_with_cache(batch.to(lm.device), names_filter=names, use_cache=False)
        for row, k in enumerate(group):
            pos = positions[k]
            wanted = names[-1:] if (final_only is not None and final_only[k]) else names
            out[k] = np.stack([cache[n][row, pos].detach().to("cpu", torch.float32).numpy() for n in wanted])
        del cache
    return out  # type: ignore[return-value]


def _pack(arrays: list[np.ndarray]) -> dict:
    shapes = [list(a.shape) for a in arrays]
    flat = np.concatenate([a.astype("<f4").ravel() for a in arrays]) if arrays else np.zeros(0, "<f4")
    return {"dtype": "float32-le", "shapes": shapes, "b64": base64.b64encode(flat.tobytes()).decode("ascii")}


def _unpack(data: dict) -> list[np.ndarray]:
    flat = np.frombuffer(base64.b64decode(data["b64"]), dtype="<f4")
    out, at = [], 0
    for shape in data["shapes"]:
        n = int(np.prod(shape))
        out.append(flat[at:at + n].reshape(shape).astype(np.float32))
        at += n
    return out


class ResidualStore:
    """Cached residuals of one model and stimuli file (see the module docstring)."""

    def __init__(self, lm, store: EvidenceStore, stimuli_sha256: str, tokenization: dict):
        self.lm = lm
        self.key = {
            **lm.cache_key(),
            "stimuli_sha256": stimuli_sha256,
            "tokenization": tokenization,
            "hooks": "i=0 blocks.0.hook_resid_pre; i>=1 blocks.{i-1}.hook_resid_post; at the target token",
        }
        self.entry = store.entry(KIND, self.key)
        self.forward_seconds = 0.0
        self.forward_prompts = 0

    def get(self, unit: str, texts: list[str], ids: list[list[int]], positions: list[int],
            final_only: list[bool] | None = None, pad: bool = True) -> list[np.ndarray]:
        """The residuals of ``texts`` (a cache unit named ``unit``), computed when absent."""

        def compute():
            start = time.perf_counter()
            arrays = residuals(self.lm, ids, positions, final_only, pad=pad)
            self.forward_seconds += time.perf_counter() - start
            self.forward_prompts += len(ids)
            return {"texts": list(texts), "positions": list(positions), "n_tokens": [len(x) for x in ids],
                    "padded_batches": pad, **_pack(arrays)}

        with self.entry.lock():
            data = self.entry.get_or_compute(unit, compute)
        if data.get("texts") != list(texts) or data.get("positions") != list(positions):
            # Same key, other prompts: cannot happen unless the unit was written by other code.
            data = compute()
            self.entry.put(unit, data)
        return _unpack(data)


# -- directions and σ ------------------------------------------------------------------------------

def unit(v: np.ndarray, axis: int = -1) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=axis, keepdims=True)


def contrastive_direction(final_a: np.ndarray, final_b: np.ndarray) -> dict:
    """science.md 0.4 from final-layer residuals [n, d] of the two senses' direction prompts."""
    m_a = np.asarray(final_a, np.float64).mean(0)
    m_b = np.asarray(final_b, np.float64).mean(0)
    e_a, e_b = unit(m_a), unit(m_b)
    return {"e_diff": unit(m_a - m_b), "e_a": e_a, "e_b": e_b, "cos_ab": float(e_a @ e_b)}


def loo_directions(final_a: np.ndarray, final_b: np.ndarray) -> np.ndarray:
    """e_diff without each direction prompt in turn: [n_a + n_b, d], row k leaves out prompt k
    (the sense-A prompts first, then the sense-B prompts)."""
    a = np.asarray(final_a, np.float64)
    b = np.asarray(final_b, np.float64)
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        raise ValueError("leave-one-out directions need at least 2 prompts per sense")
    sa, sb = a.sum(0), b.sum(0)
    rows = [unit((sa - a[k]) / (na - 1) - sb / nb) for k in range(na)]
    rows += [unit(sa / na - (sb - b[k]) / (nb - 1)) for k in range(nb)]
    return np.stack(rows)


def split_direction(final_all: np.ndarray, in_a: np.ndarray) -> np.ndarray:
    """e_diff for an arbitrary split of the direction prompts (``in_a`` boolean mask)."""
    x = np.asarray(final_all, np.float64)
    return unit(x[in_a].mean(0) - x[~in_a].mean(0))


def shuffled_splits(n_a: int, n_b: int, n_splits: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean masks [n_splits, n_a + n_b]: random sense labels with the real group sizes."""
    masks = np.zeros((n_splits, n_a + n_b), dtype=bool)
    for r in range(n_splits):
        masks[r, rng.permutation(n_a + n_b)[:n_a]] = True
    return masks


def random_unit_directions(d: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """n isotropic random unit vectors [n, d]."""
    return unit(rng.standard_normal((n, d)))


def sigma_v2(phi: np.ndarray, e_diff: np.ndarray) -> np.ndarray:
    """σ = cos(φ, ê_diff) = (φ/|φ|)·ê_diff over the last axis of φ; ``e_diff`` [d] or [d, k]."""
    return unit(phi) @ np.asarray(e_diff, np.float64)


def sigma_v1(phi: np.ndarray, e_a: np.ndarray, e_b: np.ndarray) -> np.ndarray:
    """v1 σ = cos(φ, ê_A) - cos(φ, ê_B)."""
    p = unit(phi)
    return p @ unit(e_a) - p @ unit(e_b)


def jumps(sigma: np.ndarray) -> np.ndarray:
    """Δσ_j = σ[j+1] - σ[j], j = 0..L-1, over the last axis."""
    return np.diff(np.asarray(sigma), axis=-1)


def biggest_jump(dsigma: np.ndarray) -> tuple[int, float]:
    """(j*, Δσ_{j*}) for the largest |Δσ| over every prompt and block of ``dsigma`` [..., L]."""
    d = np.asarray(dsigma).reshape(-1, np.asarray(dsigma).shape[-1])
    flat = int(np.argmax(np.abs(d)))
    p, j = divmod(flat, d.shape[-1])
    return j, float(d[p, j])


def prompt_summary(sigma: np.ndarray) -> dict:
    """science.md 18's per-prompt fields from one σ curve [L+1]."""
    s = np.asarray(sigma, np.float64)
    d = jumps(s)
    j = int(np.argmax(np.abs(d)))
    return {"sigma": s.tolist(), "sigma_final": float(s[-1]), "sigma_range": float(np.ptp(s)),
            "max_jump_layer": j, "max_jump_value": float(d[j])}



# -- every usable word's residuals, once ---------------------------------------------------------

class WordData:
    """One word's measured residuals: the final-layer residuals of its direction prompts
    (sense A first) and φ_i (i = 0..L) at the target of its graded prompts, with their levels and
    target positions. ``sigma`` is the σ every level comparison uses: as measured for a
    length-matched word, moved to the word's mean target position otherwise (:func:`position_fit`);
    ``sigma_raw`` is σ as measured."""

    def __init__(self, word: str, stimuli_word, graded, encoded, final_dir: np.ndarray, phi: np.ndarray,
                 n_direction: tuple[int, int] | None = None):
        self.word = word
        self.ws = stimuli_word
        self.graded = graded  # list of stimuli.Prompt, ordered by level
        self.encoded = encoded  # stimuli.Encoded of each graded prompt
        self.final_dir = final_dir  # [na + nb, d] float64
        if n_direction is None:
            n_direction = (len(stimuli_word.direction["A"]), len(stimuli_word.direction["B"]))
        self.na, self.nb = n_direction
        self.phi = phi  # [nG, L+1, d] float64
        self.levels = np.array([p.level for p in graded], dtype=float)
        self.h = design_h(self.levels)
        self.positions = np.array([e.position for e in encoded], dtype=float)
        self.n_tokens = np.array([len(e.ids) for e in encoded], dtype=int)
        self.length_matched = bool(np.ptp(self.positions) == 0) if len(encoded) else True
        self.position_fit = None if self.length_matched else position_fit(self.h, self.positions)
        self.dirn = contrastive_direction(final_dir[:self.na], final_dir[self.na:])

    @functools.cached_property
    def sigma_raw(self) -> np.ndarray:
        """σ v2 of every graded prompt along ê_diff, as measured: [nG, L+1] (computed once)."""
        return sigma_v2(self.phi, self.dirn["e_diff"])

    @functools.cached_property
    def sigma(self) -> np.ndarray:
        """σ of the analyses [nG, L+1]: ``sigma_raw`` moved to the mean target position where the word
        is not length-matched (the same array where it is)."""
        return self.adjust(self.sigma_raw)

    def adjust(self, sigma: np.ndarray) -> np.ndarray:
        """Any σ of the graded prompts [..., nG, k] (layers, or null directions) under this word's
        position control (unchanged for a length-matched word)."""
        return adjust_for_position(sigma, self.position_fit)

    def sigma_rows(self, rows: np.ndarray) -> np.ndarray:
        """``sigma`` of a resample of the graded prompts (bootstrap rows), the position adjustment
        refitted on the resampled prompts (as measured where it cannot be refitted)."""
        if self.position_fit is None:
            return self.sigma[rows]
        return adjust_for_position(self.sigma_raw[rows], position_fit(self.h[rows], self.positions[rows]))

    def null_directions(self, kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
        """[n, d] null directions: ``"random"`` isotropic unit vectors, or ``"shuffled"`` ê_diff of
        random sense labels of the direction prompts (group sizes kept)."""
        if kind == "random":
            return random_unit_directions(self.phi.shape[-1], n, rng)
        if kind == "shuffled":
            masks = shuffled_splits(self.na, self.nb, n, rng)
            weights = masks / self.na - (~masks) / self.nb
            return unit(weights @ self.final_dir)
        raise ValueError(f"unknown null kind {kind!r}")

    def null_sigma(self, directions: np.ndarray) -> np.ndarray:
        """σ of the graded prompts along each of ``directions`` [n, d]: [n, nG, L+1], under the same
        position control as ``sigma``."""
        return self.adjust(np.einsum("pld,rd->rpl", unit(self.phi), directions))


def load_words(lm, stimuli, store: EvidenceStore, progress=None):
    """Check ``stimuli`` against ``lm``'s tokenizer and return ``(check, words, residual_store,
    n_tokens)``: ``words`` maps each usable word to its :class:`WordData` (its measured prompts:
    those the check dropped are left out). Residuals come from the evidence cache (the units exp1,
    exp2 and exp3 share: one forward per prompt, ever). When no word can be measured, raises
    :class:`~semphase.errors.NoMeasurableWords` (one sentence)."""
    from .stimuli import check_stimuli, no_words_error

    check = check_stimuli(stimuli, lm.tokenizer)
    usable = check.usable_words(stimuli)
    if not usable:
        raise no_words_error(stimuli, check, lm.name)
    rs = ResidualStore(lm, store, stimuli.sha256, check.tokenization)
    out: dict[str, WordData] = {}
    n_tokens = 0
    for n, w in enumerate(usable, 1):
        t0 = time.perf_counter()
        ws = stimuli.words[w]
        dps, gps = check.direction_prompts(w), check.graded_prompts(w)
        texts = [p.text for p in dps + gps]
        enc = [check.encoded[t] for t in texts]
        n_tokens += sum(len(e.ids) for e in enc)
        res = rs.get(f"word-{w}", texts, [e.ids for e in enc], [e.position for e in enc],
                     final_only=[True] * len(dps) + [False] * len(gps))
        final_dir = np.stack([a[-1] for a in res[:len(dps)]]).astype(np.float64)
        phi = np.stack(res[len(dps):]).astype(np.float64)
        out[w] = WordData(w, ws, gps, enc[len(dps):], final_dir, phi,
                          (len(check.direction[w]["A"]), len(check.direction[w]["B"])))
        if progress is not None:
            progress(n, len(usable), w, time.perf_counter() - t0)
    return check, out, rs, n_tokens


def finish(ev: dict, lm, stimuli, check, rs, store, seed: int, wall_start: float, n_tokens: int) -> dict:
    """Close a semantic experiment's evidence: tokens, timing (0 forward prompts when every
    residual came from the cache) and provenance."""
    from ..provenance import base_provenance

    wall_s = time.perf_counter() - wall_start
    ev["n_tokens"] = n_tokens
    ev["timing"] = {
        "total_seconds": wall_s,
        "forward_seconds": rs.forward_seconds,
        "forward_prompts": rs.forward_prompts,
        "forward_seconds_per_prompt": (rs.forward_seconds / rs.forward_prompts) if rs.forward_prompts else None,
        "note": "forward_prompts is 0 when every residual came from the evidence cache",
    }
    ev["provenance"] = dict(base_provenance(lm, seed, wall_s, store), stimuli=stimuli.describe(),
                            tokenization=check.tokenization)
    return ev


def entry_point(measure_stimuli):
    """The registry's ``measure(ctx)`` of a semantic experiment: ``measure_stimuli`` on the session's
    model, stimuli, store, seed and budget rule."""

    def measure(ctx) -> dict:
        return measure_stimuli(ctx.lm, ctx.stimuli(), ctx.store, seed=ctx.seed, progress=ctx.progress,
                               asserts_claims=ctx.asserts_claims)

    measure.__doc__ = f"The registry's entry point: {measure_stimuli.__module__}.measure_stimuli via the session."
    return measure


def begin(lm, stimuli, store: EvidenceStore, seed: int):
    """Start a semantic experiment: seed everything, start the clock, read (or measure) every word's
    residuals. Returns (clock start, the stimuli check, per-word data, the residual store, tokens)."""
    from ..device import seed_everything

    seed_everything(seed)
    wall = time.perf_counter()
    check, data, rs, n_tokens = load_words(lm, stimuli, store)
    return wall, check, data, rs, n_tokens

