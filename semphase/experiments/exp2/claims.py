"""exp2's claim tests (science.md section 3): C4 and C5, in order."""
from __future__ import annotations

from ...claims import ClaimResult, ClaimSet, rule, cond, requires_words
from .measure import CV_BAR, MEAN_FIELD_BETA


@rule("C4", "test_c4_landau_beta_not_universal", "H",
      "the original rejected Landau criticality: fitting the Landau form A(x - l_c)^β Θ(x - l_c) to each "
      "word's response f(l/L) (design h, final layer excluded), β is not universal: its coefficient of "
      f"variation across words exceeds {CV_BAR} and a likelihood-ratio test of one common β rejects at "
      "p < 0.05",
      needs=requires_words)
def claim_c4(ev: dict, r: ClaimResult) -> None:
    c = ev["c4"]
    r.conditions += [cond("CV(β) across words", c["cv"], ">", CV_BAR),
                     cond("LR test of a common β, p", c["lr_common_beta"]["p_value"], "<", 0.05)]
    r.numbers = {"beta_mean": c["beta_mean"], "beta_min": c["beta_min"], "beta_max": c["beta_max"],
                 "cv_ci95_over_words": c["cv_ci95_over_words"], "cochran_q": c["cochran_q"],
                 "n_ci_contains_mean_field": c["n_ci_contains_mean_field"], "best_model_counts": c["best_model_counts"]}


@rule("C4", "test_c4_landau_mean_field_beta_rejected", "H",
      "the original's criterion β = 0.5 ± 0.3 is not met: the mean Landau β over words lies outside "
      "[0.2, 0.8] and the bootstrap 95 % interval of β excludes the mean-field 0.5 for at least 2/3 of "
      "the words",
      needs=requires_words)
def claim_c4_mean_field(ev: dict, r: ClaimResult) -> None:
    c = ev["c4"]
    n = len(ev["words_used"])
    r.conditions += [cond("|mean β - 0.5|", abs(c["beta_mean"] - MEAN_FIELD_BETA), ">", 0.3),
                     cond("fraction of words whose β interval excludes 0.5", 1 - c["n_ci_contains_mean_field"] / n,
                           ">=", 2 / 3)]
    r.numbers = {"beta_mean": c["beta_mean"], "n_beta_on_grid_edge": c["n_beta_on_grid_edge"]}


@rule("C5", "test_c5_linear_response_holds_only_partly", "H",
      "the original found linear response σ = h·f(l) only partly (collapse variance < 0.01 for 3 of 9 "
      "words): with h = level/4 (independent of σ), some words collapse below 0.01 and some do not",
      needs=requires_words)
def claim_c5(ev: dict, r: ClaimResult) -> None:
    c = ev["c5"]
    n = len(ev["words_used"])
    r.conditions += [cond("words with collapse variance < 0.01", c["n_below_bar_design"], ">=", 1),
                     cond("words with collapse variance >= 0.01", n - c["n_below_bar_design"], ">=", 1)]
    r.numbers = {k: c[k] for k in ("frac_below_bar_design", "frac_below_bar_circular", "median_relative_design")}


CLAIMS = ClaimSet({
    "test_c4_landau_mean_field_beta_rejected": claim_c4_mean_field,
    "test_c4_landau_beta_not_universal": claim_c4,
    "test_c5_linear_response_holds_only_partly": claim_c5,
})
