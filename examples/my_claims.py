"""Three claims of a researcher's own on exp10's evidence, in three shapes: a bound with an interval,
a comparison of two measured numbers, and a count. Check it without measuring:

    python -m semphase claims check examples/my_claims.py

then evaluate it beside the built-in claims:

    python -m semphase run exp10 --model smollm2-135m --budget smoke --claims examples/my_claims.py

Field names are those of a data file's ``evidence`` (``results/data/exp10_MODEL.json``).
"""
from semphase.claims import cond, rule

EXPERIMENT = "exp10"
PARTS = "abe"  # the parts these claims read (b: statistics, e: mean-ablation for the top head); pytest measures only these


@rule("U1", "test_u1_layer0_share_above_half", "H",
      "the layer-0 share of the positive zero-ablation ΔPPL exceeds 0.5; interval as exp10 computes it "
      "(delete-one-chunk jackknife over held-out chunks): straddling 0.5 is inconclusive",
      asserts="layer 0 carries more than half of the positive single-head ΔPPL", original=None)
def layer0_share(ev, r):
    s = ev["stats"]
    r.conditions.append(cond("layer-0 share of positive ΔPPL", s["layer0_share"], ">", 0.5,
                             interval=s["layer0_share_ci95"]))


@rule("U2", "test_u2_top_head_costs_more_zeroed_than_mean_ablated", "H",
      "the most important head's held-out ΔPPL under zero-ablation exceeds its ΔPPL under mean-ablation",
      asserts="zeroing the top head costs more than replacing it by its mean", original=None)
def zero_beats_mean(ev, r):
    t = ev["top_head"]
    r.conditions.append(cond(f"zero - mean ΔPPL of {t['label']} (held-out)",
                             t["zero_delta_eval"] - t["mean_delta_eval"], ">", 0.0))


@rule("U3", "test_u3_at_least_ten_heads_above_one_percent", "H",
      "at least 10 heads raise the rank-range perplexity by more than 1 % when zero-ablated alone",
      asserts="ten or more heads matter by more than 1 % each", original=None)
def many_heads_matter(ev, r):
    n = sum(1 for h in ev["zero"]["heads"] if h["delta_ppl"] > 0.01)
    r.conditions.append(cond("heads with zero-ablation ΔPPL > 1 %", n, ">=", 10))
