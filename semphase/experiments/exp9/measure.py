"""exp9A/B/C (science.md section 9; claim C16): the π claims across model sizes, and the
device-consistency check of the original's collapsed CUDA run.

Per model, :func:`measure` reads exp8's evidence on that model through the session: σ_free of
g(l/L) with its bootstrap interval and standard deviation (9A), Θ on held-out tokens with its
interval (9B), ΔBIC(cos_pi_0p − erf) and the number of points of g (9C). h is the design level
for every model (never the original's model-dependent fallbacks), so σ_free is comparable across
sizes.

:func:`cross_model` compares two or more models: a weighted least-squares fit σ_free = a +
b/n_layers (weights 1/SD² of each model's bootstrap σ; t interval with n − 2 degrees of freedom;
σ(∞) = a); Θ against depth (the deepest minus the shallowest model, with an interval combining the
two models' bootstrap intervals) and the four scaling laws of 9B by BIC; ΔBIC(cos − erf) against
the number of points.

:func:`device_consistency` measures the same σ curves (the graded prompts of the original's words)
and rotation angles on the CPU and on an accelerator, TF32 off and (on CUDA) on, and reports the
largest difference per layer, the spread of σ_final across prompts on every device and setting,
the torch version and torch's TF32 defaults.
"""
from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
import time

import numpy as np
from scipy import stats as sps

from ... import fits
from ...cache import EvidenceStore
from ...errors import SemphaseError

HALF_PI_SQUARED = math.pi ** 2 / 2
WIDTH_BAR = 0.05  # science.md 9.8: decide only when the 95 % interval of σ(∞) is narrower than this
THETA_GROWTH = 1.0  # rad: Θ(deepest) > Θ(shallowest) + 1 rad (path length grows with depth)
AGREEMENT = {"off": 1e-4, "on": 5e-3}  # max |Δσ| CPU vs accelerator, TF32 off / on (science.md 9.8)
COLLAPSE_BAR = 0.1  # σ_final must still vary across prompts by more than this on every device


def _theta_block(rot: dict | None) -> tuple[dict | None, str]:
    if not rot:
        return None, "none"
    if rot.get("heldout"):
        return rot["heldout"]["all"], "held-out"
    return rot["rank"]["all"], "rank"


def summarise(exp8: dict) -> dict:
    """One model's row for exp9, from its exp8 evidence."""
    a, b = exp8.get("sigma_erf"), exp8.get("pi_models")
    theta, where = _theta_block(exp8.get("rotation"))
    row: dict = {"model": exp8["model"], "n_layers": exp8["n_layers"], "d_model": exp8.get("d_model")}
    if a:
        row.update(sigma_free=a["sigma_free"], sigma_ci95=a["boot_ci95"], sigma_sd=a["boot_sigma_sd"],
                   sigma_unit=a["boot_unit"], n_points=a["n_points"])
    if b:
        r2 = {r["model"]: r["r2"] for r in b["ranking"]}
        row.update(delta_bic_cos_minus_erf=b["delta_bic_cos_pi_0p_minus_erf"],
                   r2={m: r2.get(m) for m in ("cos_pi_0p", "erf", "sin_pi_1p")}, n_points=b["n_points"])
    if theta:
        lo, hi = theta.get("Theta_over_pi_mean_ci95", [math.nan, math.nan])
        row.update(Theta_mean=theta["Theta_mean"], Theta_ci95=[lo * math.pi, hi * math.pi],
                   Theta_unit=theta.get("unit"), Theta_range=where, theta_layer_mean=theta["theta_layer_mean"],
                   Theta_over_pi_mean=theta["Theta_over_pi_mean"])
    missing = {k: exp8[k] for k in ("g_missing_reason", "rotation_missing_reason") if exp8.get(k)}
    if missing:
        row["missing"] = missing
    return row


def measure(ctx) -> dict:
    wall = time.perf_counter()
    lm = ctx.lm
    ev: dict = {"experiment": "exp9", "model": lm.name, "tag": lm.tag, "budget": ctx.budget.name,
                "budget_description": ctx.budget.description, "asserts_claims": ctx.asserts_claims,
                "n_layers": lm.n_layers, "seed": ctx.seed}
    exp8, why = ctx.need("exp8")
    if exp8 is None:
        ev["missing_reason"] = why
        return ev
    ev["row"] = summarise(exp8)
    ev["exp8_stimuli"] = (exp8.get("g") or {}).get("stimuli")
    ev["provenance"] = dict(exp8["provenance"], wall_seconds=exp8["provenance"]["wall_seconds"] + time.perf_counter() - wall)
    return ev


# -- across models ----------------------------------------------------------------------------------

def sigma_scaling(rows: list[dict]) -> dict:
    """σ_free = a + b/n_layers by weighted least squares (weights 1/SD²); σ(∞) = a with its t
    interval on n − 2 degrees of freedom (none with two models: the interval is unbounded)."""
    import statsmodels.api as sm

    use = [r for r in rows if r.get("sigma_free") is not None and math.isfinite(r["sigma_free"])]
    n = len(use)
    out: dict = {"n_models": n, "x": "1/n_layers", "weights": "1/SD² of each model's bootstrap σ",
                 "points": [{"model": r["model"], "n_layers": r["n_layers"], "sigma": r["sigma_free"],
                             "sd": r.get("sigma_sd")} for r in use]}
    distinct = len({r["n_layers"] for r in use})
    if n < 3 or distinct < 2:
        out.update(sigma_inf=math.nan, ci95=[-math.inf, math.inf], width=math.inf,
                   note=(f"{n} model(s) with {distinct} depth(s): a line in 1/n_layers leaves {max(n - 2, 0)} residual "
                         "degrees of freedom, so σ(∞) has no bounded interval; add sizes (e.g. the Pythia suite)"))
        return out
    x = np.array([1 / r["n_layers"] for r in use])
    y = np.array([r["sigma_free"] for r in use])
    sd = np.array([max(r.get("sigma_sd") or 0.0, 1e-6) for r in use])
    res = sm.WLS(y, sm.add_constant(x), weights=1 / sd ** 2).fit()
    lo, hi = res.conf_int(0.05)[0]
    out.update(sigma_inf=float(res.params[0]), slope=float(res.params[1]), ci95=[float(lo), float(hi)],
               width=float(hi - lo), df=int(res.df_resid),
               contains_inverse_sqrt_pi=bool(lo <= fits.SIGMA_PI <= hi))
    return out


def theta_scaling(rows: list[dict]) -> dict:
    """Θ against depth: the deepest minus the shallowest model (interval from their two bootstrap
    intervals, as independent normal errors), and 9B's four laws by BIC."""
    use = sorted([r for r in rows if r.get("Theta_mean") is not None], key=lambda r: r["n_layers"])
    out: dict = {"n_models": len(use), "points": [{"model": r["model"], "n_layers": r["n_layers"],
                                                   "Theta": r["Theta_mean"], "ci95": r["Theta_ci95"]} for r in use]}
    if len(use) < 2 or use[0]["n_layers"] == use[-1]["n_layers"]:
        out["note"] = "needs two models of different depths"
        return out
    s, d = use[0], use[-1]

    def se(r):
        lo, hi = r["Theta_ci95"]
        return (hi - lo) / (2 * 1.959964) if all(math.isfinite(v) for v in (lo, hi)) else math.inf

    diff = d["Theta_mean"] - s["Theta_mean"]
    half = 1.959964 * math.hypot(se(d), se(s))
    out["growth"] = {"shallow": s["model"], "deep": d["model"], "diff": diff, "ci95": [diff - half, diff + half],
                     "unit": f"each model's Θ interval ({s.get('Theta_unit')}), combined as independent normal errors"}
    n = np.array([r["n_layers"] for r in use], dtype=float)
    y = np.array([r["Theta_mean"] for r in use])
    laws = {"constant π²/2": (np.full_like(y, HALF_PI_SQUARED), 0)}
    a = float(np.sum(y * np.sqrt(n)) / np.sum(n))
    laws["a√n"] = (a * np.sqrt(n), 1)
    a = float(np.sum(y * np.log(n)) / np.sum(np.log(n) ** 2))
    laws["a ln n"] = (a * np.log(n), 1)
    if len(use) >= 3:
        slope, icpt = np.polyfit(n, y, 1)
        laws["a n + b"] = (slope * n + icpt, 2)
    fitsd = {}
    for name, (pred, k) in laws.items():
        rss = float(np.sum((y - pred) ** 2))
        fitsd[name] = {"k": k, "rss": rss, "bic": fits.information_criteria(rss, len(y), k)["bic"]}
    out["laws"] = fitsd
    out["best_law"] = min(fitsd, key=lambda k: fitsd[k]["bic"])
    return out


def delta_bic_trend(rows: list[dict]) -> dict:
    use = sorted([r for r in rows if r.get("delta_bic_cos_minus_erf") is not None], key=lambda r: r["n_points"])
    out = {"points": [{"model": r["model"], "n_points": r["n_points"], "delta_bic": r["delta_bic_cos_minus_erf"]}
                      for r in use]}
    if len(use) >= 3:
        rho = sps.spearmanr([r["n_points"] for r in use], [r["delta_bic_cos_minus_erf"] for r in use]).statistic
        out["spearman_rho"] = float(rho)
    return out


def cross_model(evs: list[dict]) -> dict:
    rows = sorted([e["row"] for e in evs if e.get("row")], key=lambda r: r["n_layers"])
    return {"experiment": "exp9", "kind": "cross-model", "model": " + ".join(e["model"] for e in evs),
            "models": [e["model"] for e in evs], "tag": "cross_" + "_".join(e["tag"] for e in evs),
            "budget": evs[0].get("budget"), "asserts_claims": all(e.get("asserts_claims", True) for e in evs),
            "rows": rows, "missing": {e["model"]: e["missing_reason"] for e in evs if e.get("missing_reason")},
            "sigma_scaling": sigma_scaling(rows), "theta_scaling": theta_scaling(rows),
            "delta_bic_trend": delta_bic_trend(rows)}


# -- device consistency ------------------------------------------------------------------------------

def _tf32_defaults() -> dict:
    """torch's own TF32 defaults, read in a fresh interpreter (semphase turns TF32 off in this one)."""
    code = ("import torch, json; print(json.dumps({'matmul_allow_tf32': torch.backends.cuda.matmul.allow_tf32, "
            "'cudnn_allow_tf32': torch.backends.cudnn.allow_tf32, "
            "'float32_matmul_precision': torch.get_float32_matmul_precision()}))")
    try:
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        import json

        return json.loads(res.stdout.strip().splitlines()[-1])
    except Exception as exc:  # noqa: BLE001 - reported, not fatal
        return {"error": f"{type(exc).__name__}: {exc}"}


def _subset(stimuli, n_words: int = 4):
    """The original's words where the stimuli have them (else the first ``n_words``)."""
    words = [w for w, ws in stimuli.words.items() if ws.in_original] or list(stimuli.words)
    keep = {w: stimuli.words[w] for w in words[:n_words]}
    return dataclasses.replace(stimuli, words=keep, controls={}, v1_pairs=[])


def word_sigmas(lm, stimuli) -> dict[str, np.ndarray]:
    """σ v2 [prompt, L+1] of each word's graded prompts, measured afresh (nothing cached)."""
    from ...semantic.measure import load_words

    _, data, _, _ = load_words(lm, stimuli, EvidenceStore(None))
    return {w: np.array(d.sigma) for w, d in data.items()}


class _TF32:
    """TF32 on (or off) for matmul and cuDNN inside the block; the settings are restored after."""

    def __init__(self, on: bool):
        self.on = on

    def __enter__(self):
        import torch

        self.saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
                      torch.get_float32_matmul_precision())
        torch.backends.cuda.matmul.allow_tf32 = self.on
        torch.backends.cudnn.allow_tf32 = self.on
        torch.set_float32_matmul_precision("high" if self.on else "highest")
        return self

    def __exit__(self, *exc):
        import torch

        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, precision = self.saved
        torch.set_float32_matmul_precision(precision)


def device_consistency(cpu_lm, acc_lm, stimuli, ids=None) -> dict:
    """σ curves (and rotation angles on ``ids``, one token sequence) on ``cpu_lm`` and on
    ``acc_lm`` (the same weights on an accelerator), TF32 off, and on as well on CUDA."""
    import torch

    from ...rotation import rotation_angles

    sub = _subset(stimuli)
    t0 = time.perf_counter()
    ref = word_sigmas(cpu_lm, sub)
    ref_theta = rotation_angles(cpu_lm, ids) if ids is not None else None
    settings = ["off"] + (["on"] if acc_lm.device.type == "cuda" else [])
    out: dict = {"experiment": "exp9", "kind": "device-consistency", "model": f"{cpu_lm.name} cpu vs {acc_lm.device}",
                 "tag": f"device_{cpu_lm.tag}_{acc_lm.device.type}", "asserts_claims": True,
                 "words": list(ref), "n_prompts": int(sum(len(v) for v in ref.values())),
                 "torch": torch.__version__, "tf32_defaults": _tf32_defaults(),
                 "accelerator": str(acc_lm.device),
                 "accelerator_name": torch.cuda.get_device_name(acc_lm.device) if acc_lm.device.type == "cuda" else None,
                 "bars": AGREEMENT, "collapse_bar": COLLAPSE_BAR,
                 "sigma_final_range": {"cpu": {w: float(np.ptp(s[:, -1])) for w, s in ref.items()}}, "settings": {}}
    for setting in settings:
        with _TF32(setting == "on"):
            got = word_sigmas(acc_lm, sub)
            theta = rotation_angles(acc_lm, ids) if ids is not None else None
        diff = np.max(np.stack([np.max(np.abs(got[w] - ref[w]), axis=0) for w in ref]), axis=0)  # [L+1]
        rec = {"max_abs_diff_sigma": float(diff.max()), "max_abs_diff_sigma_per_layer": diff.tolist(),
               "sigma_final_range": {w: float(np.ptp(s[:, -1])) for w, s in got.items()}}
        if theta is not None:
            rec["max_abs_diff_theta_per_layer"] = np.max(np.abs(theta - ref_theta), axis=1).tolist()
            rec["max_abs_diff_theta"] = float(np.max(np.abs(theta - ref_theta)))
        out["settings"][setting] = rec
    out["seconds"] = time.perf_counter() - t0
    return out


def accelerator(requested: str) -> tuple[str | None, str]:
    """The accelerator a device-consistency test would use, or None with the reason."""
    import torch

    from ...device import resolve_device

    want = requested if requested not in ("auto", "cpu") else ("cuda" if torch.cuda.is_available() else "mps")
    try:
        dev = resolve_device(want)
    except SemphaseError as exc:
        return None, (f"the device-consistency test compares the CPU with an accelerator and wanted {want}: {exc} "
                      "Run it on a CUDA or MPS machine: pytest -m gpu --model smollm2-135m --device cuda")
    if dev.type == "cpu":
        return None, "the device-consistency test needs an accelerator (--device cuda or mps), not the CPU"
    return str(dev), ""
