"""Experiment 1 (science.md sections 1, 2 and 16: claims C1, C2, C3) on our own stimuli.

:func:`measure` computes the evidence (a JSON-ready dict):

* per word: the contrastive direction from the direction prompts only (science.md 0.4), its
  separation cos_AB and leave-one-out sign accuracy on the direction prompts; σ v2 curves
  (i = 0..L) of every graded prompt, which share no prompt with the direction set; per-block
  jumps; Kendall τ between the nominal level (-4..+4) and the final-layer σ; the biggest jump;
* C1: σ v1 and v2 curves of the v1-style pairs (same prefix, text added after the target),
  each prompt run alone;
* C2 null: the mean τ under shuffled-sense splits of each word's direction prompts;
* C3 nulls: the fraction of words whose largest |Δσ_j| is at the last block, under random
  unit directions and under C2's shuffled-sense directions in place of ê_diff;
* descriptive block geometry (rotation of the residual per block) for the ambiguous words'
  graded prompts and for unambiguous control words.

Every null is a vector operation on the residuals measured once per prompt (and cached):
no extra forward pass. A word whose graded prompts are not length-matched is measured with σ moved
to its mean target position (:data:`semphase.semantic.measure.POSITION_CONTROL`): τ, the jumps and
every null use that σ; the per-prompt records keep σ as measured beside it (``sigma_raw``). :data:`CLAIMS` maps each claim test to its decision rule; the pytest
tests and the CLI report use the same rules.
"""
from __future__ import annotations

import time

import numpy as np
from scipy import stats as sps

from ...cache import EvidenceStore
from ...device import seed_everything
from ...semantic.measure import (biggest_jump, entry_point, finish, jumps, load_words, loo_directions, position_record,
                                 position_summary, prompt_summary, random_unit_directions, say, shuffled_splits,
                                 sigma_v1, sigma_v2, unit)
from ...semantic.stimuli import Stimuli

N_NULL = 200
C1_TOLERANCE = 1e-5  # C1: largest |Δσ| allowed between a pair (float noise of different lengths)


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's τ-b between ``x`` [n] and each column of ``y`` [n] or [n, k] (scipy's τ-b, vectorised)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    squeeze = y.ndim == 1
    if squeeze:
        y = y[:, None]
    i, j = np.triu_indices(len(x), 1)
    sx = np.sign(x[i] - x[j])
    sy = np.sign(y[i] - y[j])
    num = (sx[:, None] * sy).sum(0)
    denom = np.sqrt((sx != 0).sum() * (sy != 0).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = np.where(denom > 0, num / denom, np.nan)
    return tau[0] if squeeze else tau


def _block_geometry(phi: np.ndarray) -> dict:
    """Per-block rotation 1 - cos(φ_j, φ_{j+1}) and relative write |φ_{j+1} - φ_j| / |φ_j| for
    prompts [n, L+1, d]: means per block and where each prompt's largest rotation falls."""
    p = np.asarray(phi, np.float64)
    u = unit(p)
    rot = 1 - (u[:, 1:] * u[:, :-1]).sum(-1)  # [n, L]
    write = np.linalg.norm(p[:, 1:] - p[:, :-1], axis=-1) / np.linalg.norm(p[:, :-1], axis=-1)
    L = rot.shape[1]
    arg = rot.argmax(1)
    return {"n_prompts": int(len(p)), "rotation_mean": rot.mean(0).tolist(), "write_ratio_mean": write.mean(0).tolist(),
            "frac_max_rotation_last_block": float(np.mean(arg == L - 1)),
            "frac_max_rotation_block0": float(np.mean(arg == 0)),
            "max_rotation_block_hist": np.bincount(arg, minlength=L).tolist()}


def measure_stimuli(lm, stimuli: Stimuli, store: EvidenceStore, seed: int = 0, n_null: int = N_NULL,
                    progress: bool = False, asserts_claims: bool = True) -> dict:
    """Measure exp1 on ``lm`` with ``stimuli`` and return the evidence (JSON-ready)."""
    seed_everything(seed)
    wall = time.perf_counter()
    L, d = lm.n_layers, lm.d_model
    check, data, rs, n_tokens_total = load_words(lm, stimuli, store)
    words = list(data)
    skipped = check.to_json()
    say(progress, f"exp1 on {lm.name} ({lm.device}): {len(words)} of {len(stimuli.words)} words usable"
                   + (f"; skipped: {', '.join(skipped['words_skipped'])}" if skipped["words_skipped"] else ""))

    per_word: dict[str, dict] = {}
    arrays: dict[str, dict] = {}
    for n, w in enumerate(words, 1):
        wd = data[w]
        ws, gps = wd.ws, wd.graded
        final_dir, phi, na, nb, dirn, levels = wd.final_dir, wd.phi, wd.na, wd.nb, wd.dirn, wd.levels
        loo = loo_directions(final_dir[:na], final_dir[na:])
        loo_sigma = np.einsum("kd,kd->k", unit(final_dir), loo)
        truth = np.array([1] * na + [-1] * nb)
        sig = wd.sigma  # [nG, L+1], at the word's mean target position where it is not length-matched
        dsig = jumps(sig)
        tau, tau_p = sps.kendalltau(levels, sig[:, -1])
        j_star, j_val = biggest_jump(dsig)
        mean_abs = np.abs(dsig).mean(0)
        level_means = {str(k): float(sig[levels == k, -1].mean()) for k in range(-4, 5) if np.any(levels == k)}
        per_word[w] = {
            "senses": ws.senses,
            "in_original": ws.in_original,
            "n_direction": {"A": na, "B": nb},
            "cos_AB": dirn["cos_ab"],
            "loo_direction_sign_accuracy": float(np.mean(np.sign(loo_sigma) == truth)),
            "loo_direction_sigma": loo_sigma.tolist(),
            "n_tokens_graded": int(wd.n_tokens[0]) if wd.length_matched else None,
            "target_position_graded": int(wd.positions[0]) if wd.length_matched else None,
            "position": position_record(wd),
            "kendall_tau": float(tau),
            "kendall_p": float(tau_p),
            "sigma_final_level_means": level_means,
            "contrast_strong": float(level_means.get("4", np.nan) - level_means.get("-4", np.nan)),
            "max_jump_layer": int(j_star),
            "max_jump_value": float(j_val),
            "mean_abs_jump": mean_abs.tolist(),
            "max_mean_abs_jump_layer": int(np.argmax(mean_abs)),
            "prompts": [{"prompt": p.text, "level": p.level, "sense": p.sense,
                         "target_position": int(e.position), "n_tokens": len(e.ids), **prompt_summary(sig[k]),
                         **({} if wd.length_matched else {"sigma_raw": wd.sigma_raw[k].tolist()})}
                        for k, (p, e) in enumerate(zip(gps, wd.encoded))],
        }
        arrays[w] = {"final_dir": final_dir, "na": na, "nb": nb, "graded_final_hat": unit(phi[:, -1]),
                     "phi": phi.astype(np.float32), "levels": levels, "dirn": dirn, "adjust": wd.adjust}
        say(progress, f"  [{n}/{len(words)}] {w}: cos_AB {dirn['cos_ab']:.3f}, tau {tau:+.3f}, j* {j_star}")

    ev: dict = {
        "experiment": "exp1",
        "model": lm.name,
        "tag": lm.tag,
        "budget": "all stimuli",
        "asserts_claims": asserts_claims,
        "n_layers": L,
        "d_model": d,
        "seed": seed,
        "n_null": n_null,
        "stimuli": stimuli.describe(),
        "tokenization": check.tokenization,
        "batching": ("each word's prompts run as one right-padded batch (the padding follows every target, so the "
                     "causal mask keeps it from the target); the C1 pairs run one prompt at a time, unpadded"),
        "words_used": words,
        "words_skipped": skipped["words_skipped"],
        "prompts_dropped": skipped["prompts_dropped"],
        "near_duplicates_kept": skipped["near_duplicates_kept"],
        "position_control": position_summary(data),
        "controls_skipped": skipped["controls_skipped"],
        "v1_pairs_skipped": dict(skipped["v1_pairs_skipped"]),
        "words": per_word,
    }

    # -- C1: context after the target ------------------------------------------------------------
    pairs_out = []
    pair_texts, pair_enc, pair_idx = [], [], []
    for i in check.usable_pairs(stimuli):
        pair = stimuli.v1_pairs[i]
        if pair["word"] not in arrays:
            ev["v1_pairs_skipped"][str(i)] = [f"its word {pair['word']!r} is not measured on this model "
                                              "(no direction for σ)"]
            continue
        short = pair["target_last"]
        long = short + " " + pair["context_after"]
        pair_idx.append(i)
        pair_texts += [short, long]
        pair_enc += [check.encoded[short], check.encoded[long]]
    if pair_idx:
        res = rs.get("v1-pairs", pair_texts, [e.ids for e in pair_enc], [e.position for e in pair_enc], pad=False)
        n_tokens_total += sum(len(e.ids) for e in pair_enc)
        for k, i in enumerate(pair_idx):
            pair = stimuli.v1_pairs[i]
            dirn = arrays[pair["word"]]["dirn"]
            a, b = res[2 * k].astype(np.float64), res[2 * k + 1].astype(np.float64)
            s1a, s1b = sigma_v1(a, dirn["e_a"], dirn["e_b"]), sigma_v1(b, dirn["e_a"], dirn["e_b"])
            s2a, s2b = sigma_v2(a, dirn["e_diff"]), sigma_v2(b, dirn["e_diff"])
            pairs_out.append({
                "index": i, "word": pair["word"], "target_last": pair_texts[2 * k], "with_context_after": pair_texts[2 * k + 1],
                "target_position": int(pair_enc[2 * k].position),
                "n_tokens": [len(pair_enc[2 * k].ids), len(pair_enc[2 * k + 1].ids)],
                "sigma_v1_target_last": s1a.tolist(), "sigma_v1_context_after": s1b.tolist(),
                "sigma_v2_target_last": s2a.tolist(), "sigma_v2_context_after": s2b.tolist(),
                "max_abs_diff_sigma_v1": float(np.abs(s1a - s1b).max()),
                "max_abs_diff_sigma_v2": float(np.abs(s2a - s2b).max()),
                "max_rel_diff_residual": float(np.abs(a - b).max() / np.abs(a).max()),
            })
    ev["c1"] = {
        "pairs": pairs_out,
        "n_pairs": len(pairs_out),
        "tolerance": C1_TOLERANCE,
        "max_abs_diff_sigma_v1": max((p["max_abs_diff_sigma_v1"] for p in pairs_out), default=None),
        "max_abs_diff_sigma_v2": max((p["max_abs_diff_sigma_v2"] for p in pairs_out), default=None),
        "max_rel_diff_residual": max((p["max_rel_diff_residual"] for p in pairs_out), default=None),
    }

    # -- C2: fan ordering vs shuffled-sense directions -----------------------------------------------
    taus = np.array([per_word[w]["kendall_tau"] for w in words], dtype=float)
    rng2 = np.random.default_rng([seed, 2])
    null_tau = np.zeros((n_null, len(words)))
    j_shuffled = np.zeros((n_null, len(words)), dtype=int)  # C3, descriptive: j* under the same splits
    for k, w in enumerate(words):
        a = arrays[w]
        masks = shuffled_splits(a["na"], a["nb"], n_null, rng2)
        weights = masks / a["na"] - (~masks) / a["nb"]  # [n_null, n]: mean(in A) - mean(rest)
        dirs = unit(weights @ a["final_dir"])  # [n_null, d]
        sig_final = a["adjust"](a["graded_final_hat"] @ dirs.T)  # [nG, n_null]
        null_tau[:, k] = kendall_tau_b(a["levels"], sig_final)
        ds = np.abs(np.diff(a["adjust"](np.einsum("pld,rd->rpl", unit(a["phi"]), dirs)), axis=-1))  # [n_null, nG, L]
        j_shuffled[:, k] = ds.reshape(n_null, -1).argmax(1) % L
    null_mean = null_tau.mean(1) if len(words) else np.zeros(0)
    obs = float(taus.mean()) if len(words) else float("nan")
    orig = [k for k, w in enumerate(words) if per_word[w]["in_original"]]
    ev["c2"] = {
        "statistic": "mean over words of Kendall tau-b(nominal level -4..+4, final-layer sigma v2)",
        "taus": {w: float(t) for w, t in zip(words, taus)},
        "mean_tau": obs,
        "frac_tau_positive": float(np.mean(taus > 0)) if len(words) else None,
        "n_tau_positive": int(np.sum(taus > 0)),
        "original_words": {"n": len(orig), "mean_tau": float(taus[orig].mean()) if orig else None,
                           "n_tau_positive": int(np.sum(taus[orig] > 0)) if orig else None},
        "null": {
            "kind": "shuffled-sense splits of each word's direction prompts (group sizes kept), one split per word "
                    "per draw; rng = numpy default_rng([seed, 2])",
            "n": n_null,
            "mean_tau": null_mean.tolist(),
            "q95": float(np.quantile(null_mean, 0.95)) if len(null_mean) and len(words) else None,
            "mean": float(null_mean.mean()) if len(words) else None,
            "p_value": float((1 + np.sum(null_mean >= obs)) / (1 + n_null)) if len(words) else None,
        },
    }

    # -- C3: last-block jump vs random unit directions --------------------------------------------
    rng3 = np.random.default_rng([seed, 3])
    j_real = np.array([per_word[w]["max_jump_layer"] for w in words], dtype=int)
    j_real_mean = np.array([per_word[w]["max_mean_abs_jump_layer"] for w in words], dtype=int)
    j_null = np.zeros((n_null, len(words)), dtype=int)
    j_null_mean = np.zeros((n_null, len(words)), dtype=int)
    share_null = np.zeros((n_null, len(words)))
    for k, w in enumerate(words):
        a = arrays[w]
        u = random_unit_directions(d, n_null, rng3)  # [n_null, d]
        s = a["adjust"](np.einsum("pld,rd->rpl", unit(a["phi"]), u))  # [n_null, nG, L+1]
        ds = np.abs(np.diff(s, axis=-1))  # [n_null, nG, L]
        j_null[:, k] = ds.reshape(n_null, -1).argmax(1) % L
        m = ds.mean(1)  # [n_null, L]
        j_null_mean[:, k] = m.argmax(1)
        share_null[:, k] = m[:, L - 1] / m.sum(1)
    frac = float(np.mean(j_real == L - 1)) if len(words) else float("nan")
    frac_null = (j_null == L - 1).mean(1) if len(words) else np.zeros(0)
    frac_shuffled = (j_shuffled == L - 1).mean(1) if len(words) else np.zeros(0)
    share_real = [per_word[w]["mean_abs_jump"][L - 1] / sum(per_word[w]["mean_abs_jump"]) for w in words]
    ev["c3"] = {
        "statistic": "fraction of words whose largest |delta sigma_j| over the word's graded prompts and blocks "
                     "is at the last block j = L-1",
        "j_star": {w: int(j) for w, j in zip(words, j_real)},
        "frac_last_block": frac,
        "n_last_block": int(np.sum(j_real == L - 1)),
        "n_block0": int(np.sum(j_real == 0)),
        "j_star_hist": np.bincount(j_real, minlength=L).tolist() if len(words) else [0] * L,
        "original_words_n_last_block": int(sum(per_word[w]["max_jump_layer"] == L - 1 for w in words
                                               if per_word[w]["in_original"])),
        "variant_mean_abs_jump": {
            "statistic": "argmax_j of the mean |delta sigma_j| over the word's graded prompts",
            "frac_last_block": float(np.mean(j_real_mean == L - 1)) if len(words) else None,
            "null_frac_last_block_q95": float(np.quantile((j_null_mean == L - 1).mean(1), 0.95)) if len(words) else None,
            "null_frac_last_block_mean": float((j_null_mean == L - 1).mean()) if len(words) else None,
        },
        "shuffled_sense_directions": {
            "statistic": "the same fraction with C2's shuffled-sense split directions (built, like e_diff, from "
                         "final-layer residuals of the word's direction prompts, but blind to the sense)",
            "kind": "C2's shuffled-sense splits (the same draws): one split per word per draw; rng = numpy "
                    "default_rng([seed, 2])",
            "n": n_null,
            "frac_last_block": frac_shuffled.tolist(),
            "frac_last_block_mean": float(frac_shuffled.mean()) if len(words) else None,
            "frac_last_block_q95": float(np.quantile(frac_shuffled, 0.95)) if len(words) else None,
            "p_value_real_exceeds": float((1 + np.sum(frac_shuffled >= frac)) / (1 + n_null)) if len(words) else None,
        },
        "last_block_share_of_abs_jumps": {
            "real_mean": float(np.mean(share_real)) if len(words) else None,
            "null_mean": float(share_null.mean()) if len(words) else None,
            "uniform": 1.0 / L,
        },
        "null": {
            "kind": "a random isotropic unit direction in place of e_diff, drawn independently per word and draw; "
                    "rng = numpy default_rng([seed, 3])",
            "n": n_null,
            "frac_last_block": frac_null.tolist(),
            "q95": float(np.quantile(frac_null, 0.95)) if len(words) else None,
            "mean": float(frac_null.mean()) if len(words) else None,
            "p_value_real_exceeds": float((1 + np.sum(frac_null >= frac)) / (1 + n_null)) if len(words) else None,
            "j_star_hist_per_draw_mean": (np.stack([np.bincount(r, minlength=L) for r in j_null]).mean(0).tolist()
                                          if len(words) else [0.0] * L),
        },
    }

    # -- block geometry: ambiguous targets vs unambiguous controls (descriptive) ------------------
    controls = check.usable_controls(stimuli)
    geometry = {}
    if words:
        geometry["ambiguous_graded"] = _block_geometry(np.concatenate([arrays[w]["phi"] for w in words]))
    if controls:
        texts = [t for c in controls for t in stimuli.controls[c]]
        enc = [check.encoded[t] for t in texts]
        n_tokens_total += sum(len(e.ids) for e in enc)
        res = rs.get("controls", texts, [e.ids for e in enc], [e.position for e in enc])
        geometry["controls"] = _block_geometry(np.stack(res))
        geometry["controls"]["words"] = controls
    ev["block_geometry"] = geometry

    return finish(ev, lm, stimuli, check, rs, store, seed, wall, n_tokens_total)


measure = entry_point(measure_stimuli)
