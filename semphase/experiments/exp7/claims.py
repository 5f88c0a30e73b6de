"""exp7's claim tests (science.md sections 7 and 16: C12), one decision rule per test, in order.

Reproduction (R) rules compare the original protocol (positions 0-999 of the first chunk of
WikiText-2 test, position 0 included) with the original's GPT-2 small numbers. Hypothesis (H)
rules use the robust protocol (positions drawn at random in chunks drawn at random, position 0
excluded); their intervals resample the drawn chunks. GPT-2's layer ranges and rank bounds are
scaled to the model's depth and width (blocks 3-8 of 12 are 3/12 <= l/L <= 8/12; 150 of 768
dimensions is 150 d/768).
"""
from __future__ import annotations

import math

from ...claims import ClaimResult, ClaimSet, cond, rule
from ...models import registry_name

ORIGINAL_NORMS = (50.4, 16.3, 18.0, 17.6, 18.3, 23.6, 26.0, 36.9, 36.5, 52.4, 97.9, 354.1)  # 7A means
ORIGINAL_K90 = (85, 88, 1, 198, 220, 226, 235, 221, 222, 198, 169, 3)  # 7B


def _original_protocol(ev: dict) -> str | None:
    if registry_name(ev["model"]) != "gpt2":
        return f"reproduction tests compare with the original's GPT-2 small numbers; this run is on {ev['model']}"
    src = ev["data"].get("source", "")
    if "wikitext-2-raw-v1 test" not in src or ev["data"]["ctx"] != 1024:
        return "the original protocol is positions 0-999 of the first 1,024-token chunk of WikiText-2 test: --split test"
    return None


def corrected(point: float, basic: list[float]) -> float:
    """The bootstrap's bias-corrected estimate of a rank statistic: the centre of its basic interval,
    2 point - (q_lo + q_hi) / 2 with q the percentile bounds of the replicates (a PCA rank from finite
    samples is biased low, and resampling with repeats lowers it again: the sample estimate can lie outside
    the basic interval, the corrected one never does)."""
    return float((basic[0] + basic[1]) / 2) if basic else float(point)


def corrected_note(name: str, point, basic) -> str:
    return (f"{name}: the sample estimate is {point}; the row shows the bootstrap's bias-corrected estimate "
            f"{corrected(point, basic):.4g} (the centre of its basic interval {basic[0]:.4g} to {basic[1]:.4g}), "
            "since the sample estimate of a PCA rank is biased low and may lie outside that interval.")


@rule("S", "test_exp7_evidence_sane", "S",
      "delta-phi equals the sum of the attention and MLP writes (max |difference| < 1e-4 of the mean norm), every "
      "norm is finite and positive, and every block's thresholds are ordered K(50) <= K(80) <= K(90) <= K(95) <= d_model",
      asserts="Δφ equals the sum of the attention and MLP writes and every rank threshold is ordered",
      original=None)
def claim_sanity(ev: dict, r: ClaimResult) -> None:
    d = ev["d_model"]
    r.conditions.append(cond("max |delta-phi - attn - mlp| / mean |delta-phi|", ev["identity_max_rel_error"], "<", 1e-4))
    norms = [x["mean"] for q in ("delta_phi", "attn", "mlp") for x in ev["robust"][q]["norms"]]
    r.conditions.append(cond("finite positive mean norms", sum(math.isfinite(x) and x > 0 for x in norms), "==",
                             len(norms)))
    ordered = sum(1 for q in ("delta_phi", "attn", "mlp") for t in ev["robust"][q]["thresholds"]
                  if t["0.5"] <= t["0.8"] <= t["0.9"] <= t["0.95"] <= d)
    r.conditions.append(cond("blocks with ordered thresholds", ordered, "==", 3 * ev["n_layers"]))


@rule("C12", "test_c12_reproduce_delta_phi_norms", "R",
      "gpt2, original protocol: mean |delta-phi| per block within 2 % of 50.4, 16.3, 18.0, 17.6, 18.3, 23.6, 26.0, 36.9, "
      "36.5, 52.4, 97.9, 354.1 (science.md 7.5, 7A)", needs=_original_protocol,
      asserts="GPT-2's mean |Δφ| per block recomputes within 2 %",
      original="same")
def claim_c12_reproduce_norms(ev: dict, r: ClaimResult) -> None:
    got = [x["mean"] for x in ev["original"]["delta_phi"]["norms"]]
    r.conditions += [cond(f"mean |delta-phi| of block {l}", got[l], "within", (v, round(0.02 * v, 3)))
                     for l, v in enumerate(ORIGINAL_NORMS)]


@rule("C12", "test_c12_reproduce_k90_per_layer", "R",
      "gpt2, original protocol: K(90 %) of delta-phi per block within 2 of 85, 88, 1, 198, 220, 226, 235, 221, 222, "
      "198, 169, 3 (science.md 7.5, 7B)", needs=_original_protocol,
      asserts="GPT-2's K(90 %) of Δφ per block recomputes within 2",
      original="same")
def claim_c12_reproduce_k90(ev: dict, r: ClaimResult) -> None:
    got = [t["0.9"] for t in ev["original"]["delta_phi"]["thresholds"]]
    r.conditions += [cond(f"K(90 %) of block {l}", got[l], "within", (v, 2)) for l, v in enumerate(ORIGINAL_K90)]


def _not_lowrank_statement(ev: dict) -> str:
    s = (ev.get("stats") or {}).get("not_lowrank") or {}
    return (f"delta-phi is not low-rank (science.md 7.8, robust protocol, position 0 excluded): in the middle blocks "
            f"(3-8 of 12 as depth fractions: {s.get('layers')}) every K(90 %) is >= {s.get('bound')} (150 of 768 "
            "dimensions scaled to d_model); the smallest is the bootstrap's bias-corrected estimate, its basic interval resampling the drawn chunks")


@rule("C12", "test_c12_delta_phi_not_lowrank", "H", _not_lowrank_statement,
      needs=lambda ev: None if (ev.get("stats") or {}).get("not_lowrank") else "no middle blocks at this depth",
      asserts="every middle block's Δφ needs at least 150 of 768 dimensions (scaled) for 90 % of its variance",
      original="same")
def claim_c12_not_lowrank(ev: dict, r: ClaimResult) -> None:
    s = ev["stats"]["not_lowrank"]
    r.conditions.append(cond(f"smallest K(90 %) of blocks {s['layers'][0]}-{s['layers'][-1]}, bias-corrected",
                             corrected(s["min_k90"], s["min_k90_ci95"]), ">=", s["bound"], interval=s["min_k90_ci95"],
                             unit=ev["interval_unit"]))
    r.reason = corrected_note("smallest K(90 %)", s["min_k90"], s["min_k90_ci95"])
    r.numbers = dict(s)


def _position0_statement(ev: dict) -> str:
    p = (ev.get("stats") or {}).get("position0") or {}
    return ("the original's singular blocks are an artefact of position 0 (science.md 7.7 i, 7.8; a robustness test): "
            f"every block but the last whose K(90 %) under the original protocol is <= {p.get('bound')} (20 of 768 "
            f"dimensions scaled; here {p.get('singular_original')}) has K(90 %) > {p.get('bound')} once position 0 is "
            "excluded (robust protocol); the smallest is the bootstrap's bias-corrected estimate, its basic interval resampling the drawn chunks")


@rule("C12", "test_c12_singular_blocks_are_position0_artefacts", "H", _position0_statement,
      needs=lambda ev: None if ((ev.get("stats") or {}).get("position0") or {}).get("singular_original")
      else "no block but the last is singular under the original protocol on this model: nothing to attribute to "
           "position 0",
      asserts="the original's near-singular blocks are no longer singular once position 0 is excluded",
      original="same")
def claim_c12_position0(ev: dict, r: ClaimResult) -> None:
    p = ev["stats"]["position0"]
    r.conditions.append(cond("smallest K(90 %) of those blocks, position 0 excluded, bias-corrected",
                             corrected(p["min_k90_excluded"], p["min_k90_excluded_ci95"]), ">", p["bound"],
                             interval=p["min_k90_excluded_ci95"], unit=ev["interval_unit"]))
    r.reason = corrected_note("smallest K(90 %), position 0 excluded", p["min_k90_excluded"], p["min_k90_excluded_ci95"])
    r.numbers = dict(p)


def _attn_statement(ev: dict) -> str:
    s = (ev.get("stats") or {}).get("attn_vs_mlp") or {}
    return ("attention writes are of lower rank than MLP writes (science.md 7.8, robust protocol): K(90 %) of "
            f"hook_attn_out < K(90 %) of hook_mlp_out in every block of 3-10 of 12 as depth fractions ({s.get('layers')}); "
            "the largest difference attn - MLP (the bootstrap's bias-corrected estimate) must be < 0, its basic interval resampling the drawn chunks (paired)")


@rule("C12", "test_c12_attention_lower_rank_than_mlp", "H", _attn_statement,
      needs=lambda ev: None if (ev.get("stats") or {}).get("attn_vs_mlp") else "no blocks in the range at this depth",
      asserts="attention writes have lower rank than MLP writes in every middle block",
      original="same")
def claim_c12_attn(ev: dict, r: ClaimResult) -> None:
    s = ev["stats"]["attn_vs_mlp"]
    r.conditions.append(cond("largest K90(attn) - K90(MLP) over the blocks, bias-corrected",
                             corrected(s["max_diff"], s["max_diff_ci95"]), "<", 0,
                             interval=s["max_diff_ci95"], unit=ev["interval_unit"]))
    r.reason = corrected_note("largest K90(attn) - K90(MLP)", s["max_diff"], s["max_diff_ci95"])
    r.numbers = {k: v for k, v in s.items() if k != "ratio_attn_over_mlp"}


# The original study's claim for each claim ID, in one sentence (science.md 16 and the experiment's
# section): what the "original's claim" column of the reports says is supported or contradicted.
ORIGINAL_CLAIMS = {
    "C12": "the residual update Δφ of a block is not low-rank, a shared basis fails, and attention writes are of "
           "lower rank than MLP writes",
}

CLAIMS = ClaimSet([
    claim_sanity,
    claim_c12_reproduce_norms,
    claim_c12_reproduce_k90,
    claim_c12_not_lowrank,
    claim_c12_position0,
    claim_c12_attn,
], original_claims=ORIGINAL_CLAIMS)
