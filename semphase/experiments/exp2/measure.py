"""Experiment 2 (science.md section 3; claims C4 and C5) on our own stimuli.

The original's five conditions (neutral, weak_A/B, strong_A/B) become our nine graded levels
-4..+4 (three length-matched prompts each); σ_c(i) is the mean σ v2 of a level's prompts along
ê_diff (built from the disjoint direction prompts, as in exp1). Two definitions of h:

* **design** (independent of σ, the primary one): h = level/4, so strong A = +1, strong B = -1,
  neutral 0;
* **circular** (the original's): h(c) = (σ_L(c) - m)/r with m, r from the strong levels' final
  σ (:func:`semphase.fits.exp2_h`), which fixes f at the final layer by construction.

For each word: the collapse f_c(i) = σ_c(i)/h(c) over levels with |h| > 0.05 and its variance
(C5); f_mean at x = i/L, i = 0..L-1 (the final point excluded as in the original), fitted with
the original's four models (curve_fit, the original's p0) and the Landau form
A(x - l_c)^β Θ(x - l_c) that the original's README stated but never fitted (grid search over β
and l_c, amplitude exact: :func:`semphase.fits.landau_grid_fit`); β's interval by bootstrap
over prompts (resampled within each level). Across words (C4): CV(β), a likelihood-ratio test
of one common β from the profile RSS, Cochran's Q with bootstrap standard errors, and how many
words' β intervals contain the mean-field 0.5. The logit lens (ln_final then W_U on the stored
residuals, no new forward pass) gives the top-1 token per layer at the target for the strong
prompts, and whether it changes at the last block.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from ... import fits
from ...cache import EvidenceStore
from ...device import seed_everything
from ...semantic.measure import design_h, entry_point, finish, jumps, load_words, say, stratified_rows
from ...semantic.stimuli import Stimuli

N_BOOT = 200
H_MIN = 0.05  # f_c only for |h| > 0.05 (science.md 3.2)
COLLAPSE_BAR = 0.01  # the original's "collapse variance < 0.01"
CV_BAR = 0.3  # the original's std(β)/mean(β) < 0.3 criterion
MEAN_FIELD_BETA = 0.5


def level_means(sigma: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct levels ascending, σ averaged over each level's prompts [n_levels, L+1])."""
    uniq = np.unique(levels)
    return uniq, np.stack([sigma[levels == k].mean(0) for k in uniq])


def word_f_mean(sigma: np.ndarray, levels: np.ndarray, h_kind: str) -> tuple[np.ndarray, "fits.Collapse", np.ndarray]:
    """(h per level, the collapse, f_mean at i = 0..L) for one word's graded σ [nG, L+1]."""
    uniq, s = level_means(sigma, levels)
    if h_kind == "design":
        h = design_h(uniq)
    else:
        h = fits.exp2_h(s[:, -1], int(np.argmax(uniq)), int(np.argmin(uniq)))
        if h is None:
            h = np.zeros(len(uniq))
    col = fits.collapse_variance(s, h, H_MIN)
    return h, col, col.f_mean


def logit_lens(lm, phi: np.ndarray) -> list[list[str]]:
    """Top-1 token (decoded) per layer for residuals [n, L+1, d]: ln_final then the unembedding,
    applied to the stored residuals."""
    out = []
    with torch.inference_mode():
        x = torch.as_tensor(np.asarray(phi, np.float32), device=lm.device)
        for p in range(x.shape[0]):
            logits = lm.bridge.unembed(lm.bridge.ln_final(x[p]))
            top = logits.argmax(-1).tolist()
            out.append([lm.tokenizer.decode([t]) for t in top])
    return out


def measure_stimuli(lm, stimuli: Stimuli, store: EvidenceStore, seed: int = 0, n_boot: int = N_BOOT,
                    asserts_claims: bool = True, progress: bool = False) -> dict:
    """Measure exp2 on ``lm`` with ``stimuli``; returns the evidence (JSON-ready)."""
    seed_everything(seed)
    wall = time.perf_counter()
    L = lm.n_layers
    check, data, rs, n_tokens = load_words(lm, stimuli, store)
    words = list(data)
    skipped = check.to_json()
    say(progress, f"exp2 on {lm.name} ({lm.device}): {len(words)} words")
    x = np.arange(L) / L  # i = 0..L-1: the final point is excluded (science.md 3.2)
    rng = np.random.default_rng([seed, 20])
    per_word: dict[str, dict] = {}
    betas, beta_se, profiles = [], [], []
    best_counts: dict[str, int] = {}
    for w in words:
        wd = data[w]
        sig = wd.sigma
        out: dict = {"senses": wd.ws.senses, "in_original": wd.ws.in_original}
        for kind in ("design", "circular"):
            h, col, f_mean = word_f_mean(sig, wd.levels, kind)
            scale = float(np.mean(f_mean ** 2)) if np.all(np.isfinite(f_mean)) else float("nan")
            out[kind] = {"h": h.tolist(), "collapse_variance": col.variance,
                         "collapse_variance_relative": col.variance / scale if scale > 0 else float("nan"),
                         "n_levels_used": int(col.included.sum()), "f_mean": f_mean.tolist()}
        f_mean = np.asarray(out["design"]["f_mean"])
        y = f_mean[:L]
        ranked = fits.fit_all(x, y, fits.EXP2_MODELS)
        grid = fits.landau_grid_fit(x, y[None], refine=True)
        landau = {"params": {"A": float(grid.amplitude[0]), "beta": float(grid.beta[0]), "l_c": float(grid.l_c[0])},
                  "rss": float(grid.rss[0]), "bic": float(grid.bic()[0]),
                  "r2": fits.r2(y, fits.LANDAU_MODELS["landau"](x, grid.amplitude[0], grid.beta[0], grid.l_c[0])),
                  "beta_on_grid_edge": bool(grid.beta[0] <= fits.BETA_GRID[0] * 1.001 or grid.beta[0] >= fits.BETA_GRID[-1] * 0.999)}
        table = [r.as_dict() for r in ranked] + [{"model": "landau", **landau, "n_params": 3}]
        table.sort(key=lambda r: r["bic"])
        best_counts[table[0]["model"]] = best_counts.get(table[0]["model"], 0) + 1
        # bootstrap over prompts (within levels): f_mean -> Landau beta
        boot = []
        for _ in range(n_boot):
            rows = stratified_rows(wd.levels, rng)
            _, _, fb = word_f_mean(sig[rows], wd.levels[rows], "design")
            boot.append(fb[:L])
        bg = fits.landau_grid_fit(x, np.stack(boot))
        ci = np.quantile(bg.beta, [0.025, 0.975])
        betas.append(landau["params"]["beta"])
        beta_se.append(float(np.std(bg.beta, ddof=1)))
        profiles.append(grid.profile_rss[0])
        out["fits"] = table
        out["best_model"] = table[0]["model"]
        out["landau"] = {**landau, "beta_ci95": ci.tolist(), "beta_boot_se": beta_se[-1],
                         "ci_contains_mean_field": bool(ci[0] <= MEAN_FIELD_BETA <= ci[1])}
        # logit lens on the strong prompts (levels +4 and -4)
        strong = [k for k, lv in enumerate(wd.levels) if abs(lv) == np.max(np.abs(wd.levels))]
        tops = logit_lens(lm, wd.phi[strong])
        ds = np.abs(jumps(sig[strong]))  # [n, L]
        changes = np.array([[t[j + 1].strip() != t[j].strip() for j in range(L)] for t in tops])
        out["logit_lens"] = {
            "prompts": [{"prompt": wd.graded[k].text, "level": int(wd.levels[k]), "top1": t}
                        for k, t in zip(strong, tops)],
            "frac_top1_change_last_block": float(changes[:, -1].mean()),
            "frac_top1_change_mid_blocks": float(changes[:, 1:-1].mean()) if L > 2 else None,
            "frac_biggest_jump_block_has_top1_change": float(np.mean(changes[np.arange(len(strong)), ds.argmax(1)])),
        }
        per_word[w] = out
        say(progress, f"  {w}: collapse var {out['design']['collapse_variance']:.4f}, Landau beta "
                       f"{landau['params']['beta']:.2f} [{ci[0]:.2f}, {ci[1]:.2f}], best {table[0]['model']}")

    b = np.array(betas)
    ev: dict = {
        "experiment": "exp2", "model": lm.name, "tag": lm.tag, "budget": "all stimuli", "asserts_claims": asserts_claims,
        "n_layers": L, "d_model": lm.d_model, "seed": seed, "n_boot": n_boot, "stimuli": stimuli.describe(),
        "tokenization": check.tokenization, "words_used": words, "words_skipped": skipped["words_skipped"],
        "conditions": "graded levels -4..+4 (three prompts each), sigma_c = mean over a level's prompts",
        "fit_points": f"f_mean at x = i/L for i = 0..{L - 1} (final point excluded), {L} points",
        "words": per_word,
    }
    if len(words) >= 2:
        lr = fits.common_parameter_lr(profiles, [L] * len(words))
        q = fits.cochran_q(b, beta_se)
        cv = float(np.std(b) / np.mean(b)) if np.mean(b) != 0 else float("inf")
        # CV's interval: resample words
        rng_w = np.random.default_rng([seed, 21])
        cvs = [np.std(s) / np.mean(s) for s in (b[rng_w.integers(0, len(b), len(b))] for _ in range(2000))]
        col_design = np.array([per_word[w]["design"]["collapse_variance"] for w in words])
        col_circ = np.array([per_word[w]["circular"]["collapse_variance"] for w in words])
        ev["c4"] = {
            "beta": dict(zip(words, b.tolist())),
            "beta_mean": float(b.mean()), "beta_std": float(b.std()), "beta_min": float(b.min()), "beta_max": float(b.max()),
            "cv": cv, "cv_ci95_over_words": np.quantile(cvs, [0.025, 0.975]).tolist(),
            "mean_in_mean_field_band": bool(abs(b.mean() - MEAN_FIELD_BETA) <= 0.3),
            "lr_common_beta": {**lr, "common_beta": float(fits.BETA_GRID[lr["common_index"]]),
                               "note": "Gaussian likelihood with autocorrelated residuals: anti-conservative"},
            "cochran_q": q,
            "n_ci_contains_mean_field": int(sum(per_word[w]["landau"]["ci_contains_mean_field"] for w in words)),
            "n_beta_on_grid_edge": int(sum(per_word[w]["landau"]["beta_on_grid_edge"] for w in words)),
            "best_model_counts": best_counts,
        }
        ev["c5"] = {
            "collapse_variance_design": dict(zip(words, col_design.tolist())),
            "collapse_variance_circular": dict(zip(words, col_circ.tolist())),
            "n_below_bar_design": int(np.sum(col_design < COLLAPSE_BAR)),
            "n_below_bar_circular": int(np.sum(col_circ < COLLAPSE_BAR)),
            "frac_below_bar_design": float(np.mean(col_design < COLLAPSE_BAR)),
            "frac_below_bar_circular": float(np.mean(col_circ < COLLAPSE_BAR)),
            "median_relative_design": float(np.median([per_word[w]["design"]["collapse_variance_relative"]
                                                       for w in words])),
            "bar": COLLAPSE_BAR,
        }
        ll = [per_word[w]["logit_lens"] for w in words]
        ev["logit_lens"] = {
            "frac_top1_change_last_block": float(np.mean([x["frac_top1_change_last_block"] for x in ll])),
            "frac_top1_change_mid_blocks": float(np.mean([x["frac_top1_change_mid_blocks"] or 0 for x in ll])),
            "frac_biggest_jump_block_has_top1_change": float(np.mean([x["frac_biggest_jump_block_has_top1_change"]
                                                                      for x in ll])),
        }
    return finish(ev, lm, stimuli, check, rs, store, seed, wall, n_tokens)


measure = entry_point(measure_stimuli)
