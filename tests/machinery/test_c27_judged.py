"""C27's judged best-of-N (exp10 part p, science.md 14.7; issue 21): the prompt windows spread over
chunks, the comparisons with their intervals over chunks, and the two hypothesis rules, fed with
planted evidence on each side of their bounds (they must replicate, fail, or stay inconclusive)."""
import numpy as np
import pytest
import torch

from semphase.claims import Verdict
from semphase.data import TokenSet
from semphase.experiments.exp10 import recovery
from semphase.experiments.exp10.claims_phases23 import PHASE23_CLAIMS

pytestmark = pytest.mark.machinery

H_RULES = ("test_c27_best_of_n_with_an_independent_judge", "test_c27_best_of_n_at_equal_compute")


def _ts(n_chunks: int, ctx: int = 64) -> TokenSet:
    return TokenSet(torch.arange(n_chunks * ctx).view(n_chunks, ctx), {"token_range": [0, n_chunks * ctx]})


def test_windows_take_one_prompt_per_chunk_when_the_chunks_suffice():
    P, R, where = recovery.spread_windows(_ts(40), 10, 8, 4)
    chunks = [c for c, _ in where]
    assert P.shape == (10, 8) and R.shape == (10, 4)
    assert len(set(chunks)) == 10 and chunks[0] == 0 and chunks[-1] == 39  # evenly spread, ends included
    assert all(s == 0 for _, s in where)
    for (c, s), p, r in zip(where, P, R):  # the continuation is the text that followed the prompt
        assert p[0].item() == c * 64 and r[0].item() == c * 64 + 8


def test_windows_reuse_chunks_only_when_there_are_too_few():
    P, R, where = recovery.spread_windows(_ts(3), 7, 8, 4)
    assert P.shape[0] == 7 and sorted({c for c, _ in where}) == [0, 1, 2]
    assert [s for _, s in where] == [0, 0, 0, 12, 12, 12, 24]  # chunks first, then windows
    with pytest.raises(Exception, match="hold no prompt"):
        recovery.spread_windows(_ts(3, 10), 2, 8, 4)


def _run(f1: np.ndarray, ppl: np.ndarray, judge: np.ndarray | None = None) -> dict:
    """A best-of-N result of one seed: per prompt, candidates' scorer perplexity and F1 [prompt, cand]."""
    rows = []
    for i in range(f1.shape[0]):
        row = {"scorer_ppl": ppl[i].tolist(), "reference_f1": f1[i].tolist(), "distinct2": [1.0] * f1.shape[1]}
        if judge is not None:
            row["judge_nll"] = {"big": judge[i].tolist()}
        rows.append(row)
    return {"per_prompt": rows, "generation_seconds": 1.0}


def _evidence(shift_original: float, shift_equal: float, n_chunks: int = 60, prompts_per_chunk: int = 2, seeds: int = 3,
              noise: float = 0.05, min_chunks: int = 50, judge_shift: float | None = None, seed: int = 0) -> dict:
    """Planted judged evidence: relu's best-of-5 pick has F1 ``shift_original`` above the baseline's first
    sample and ``shift_equal`` above the baseline's best-of-5 pick (on average, with ``noise``)."""
    rng = np.random.default_rng(seed)
    n = n_chunks * prompts_per_chunk
    chunks = [i % n_chunks for i in range(n)]
    ppl = np.tile(np.array([5.0, 1.0, 4.0, 3.0, 2.0]), (n, 1))  # best-of-5 picks candidate 1; best-of-1 candidate 0
    base_runs, relu_runs = [], []
    for _ in range(seeds):
        level = rng.uniform(0.05, 0.15, size=n)  # prompt difficulty, shared by the conditions
        f_base = np.stack([level + rng.normal(0, noise, n) for _ in range(5)], axis=1)
        f_base[:, 1] = level + shift_original - shift_equal + rng.normal(0, noise, n)  # the baseline's best-of-5 pick
        f_relu = np.stack([level + rng.normal(0, noise, n) for _ in range(5)], axis=1)
        f_relu[:, 1] = level + shift_original + rng.normal(0, noise, n)  # relu's best-of-5 pick
        f_base[:, 0] = level + rng.normal(0, noise, n)  # the baseline's first sample
        judge_b = judge_r = None
        if judge_shift is not None:
            judge_b = np.full((n, 5), 3.0) + rng.normal(0, noise, (n, 5))
            judge_r = np.full((n, 5), 3.0) + rng.normal(0, noise, (n, 5))
            judge_r[:, 1] += judge_shift
        base_runs.append(_run(f_base, ppl, judge_b))
        relu_runs.append(_run(f_relu, ppl, judge_r))
    measures = ["reference_f1", "scorer_ppl"] + (["judge_nll:big"] if judge_shift is not None else [])
    comparisons = {
        "original": {m: recovery.compare_best_of(relu_runs, base_runs, 5, 1, m, chunks) for m in measures},
        "equal_compute": {m: recovery.compare_best_of(relu_runs, base_runs, 5, 5, m, chunks) for m in measures},
    }
    ref = recovery.cluster_difference(rng.normal(0.1, 0.05, n), chunks)
    judged = {
        "compared": {"a": "relu_56", "b": "baseline"}, "n": 5, "seeds": list(range(seeds)),
        "prompts": {"n": n, "n_chunks": n_chunks, "min_chunks": min_chunks, "enough_chunks": n_chunks >= min_chunks,
                    "prompt_tokens": 64, "generated_tokens": 32},
        "judges": ["big"] if judge_shift is not None else [], "judge_note": "planted",
        "comparisons": comparisons,
        "reference_nll": {"per_condition": {"baseline": 3.3, "relu_56": 3.4}, "difference": ref},
    }
    return {"model": "smollm2-135m", "asserts_claims": True, "heldout": {"eval": {}}, "recovery": {"judged": judged}}


def _verdicts(ev: dict) -> dict:
    return {t: PHASE23_CLAIMS.evaluate(ev, t) for t in H_RULES}


def test_relu_better_in_both_comparisons_replicates():
    r = _verdicts(_evidence(0.05, 0.03))
    for res in r.values():
        assert res.value is Verdict.REPLICATES, res.explain()
        c = res.conditions[0]
        assert c.interval[0] > 0 and "60 chunks" in c.unit
    assert r[H_RULES[0]].original_verdict() == "supported"


def test_relu_worse_fails_and_equal_compute_does_not_contradict_the_original():
    r = _verdicts(_evidence(-0.05, -0.05))
    for res in r.values():
        assert res.value is Verdict.REFUTED, res.explain()
        assert res.conditions[0].interval[1] < 0
    assert r[H_RULES[0]].original_verdict() == "contradicted"
    assert r[H_RULES[1]].original_verdict() == "undecided"  # the original never claimed recovery at equal samples


def test_a_difference_whose_interval_straddles_zero_is_inconclusive():
    r = _verdicts(_evidence(0.0, 0.0, noise=0.2))
    for res in r.values():
        c = res.conditions[0]
        assert c.interval[0] < 0 < c.interval[1]
        assert res.value is Verdict.INCONCLUSIVE, res.explain()


def test_the_two_comparisons_are_decided_apart():
    """relu@5 beats baseline@1 (the original's comparison) but loses to baseline@5 (equal samples)."""
    r = _verdicts(_evidence(0.05, -0.05))
    assert r[H_RULES[0]].value is Verdict.REPLICATES
    assert r[H_RULES[1]].value is Verdict.REFUTED


def test_fewer_chunks_than_the_budget_asks_is_not_decided():
    r = _verdicts(_evidence(0.05, 0.05, n_chunks=20, prompts_per_chunk=5))
    for res in r.values():
        assert res.value is Verdict.INCONCLUSIVE and "only 20 chunks" in res.conditions[0].unit


def test_an_independent_judge_joins_the_decision():
    """A named judge whose loss is higher on relu's picks fails the row even where F1 favours relu."""
    good = _verdicts(_evidence(0.05, 0.05, judge_shift=-0.1))
    assert all(res.value is Verdict.REPLICATES and len(res.conditions) == 2 for res in good.values())
    bad = _verdicts(_evidence(0.05, 0.05, judge_shift=+0.1))
    for res in bad.values():
        assert res.value is Verdict.REFUTED
        assert [c.ok for c in res.conditions] == [True, False]


def test_evidence_without_the_judged_measurement_skips_with_the_reason():
    ev = _evidence(0.05, 0.05)
    ev["recovery"] = {"best_of_n_vs_baseline": {}}
    for res in _verdicts(ev).values():
        assert res.value is Verdict.SKIPPED and "judged best-of-N" in res.reason


def test_the_interval_is_over_chunks_not_prompts():
    """Prompts of one chunk move together: the interval rests on the chunk count, and it is wider than
    an interval that took every prompt (and seed) as independent."""
    rng = np.random.default_rng(1)
    n_chunks, per = 10, 10
    chunks = [i // per for i in range(n_chunks * per)]
    diff = np.repeat(rng.normal(0.02, 0.05, n_chunks), per)[None, :] + rng.normal(0, 0.005, (3, n_chunks * per))
    c = recovery.cluster_difference(diff, chunks)
    assert c["n_clusters"] == n_chunks and "10 chunks; 100 prompts x 3 seeds" in c["unit"]
    naive = 2 * 1.96 * diff.std(ddof=1) / np.sqrt(diff.size)
    assert (c["ci95"][1] - c["ci95"][0]) > 3 * naive
    assert c["ci95"][0] <= c["value"] <= c["ci95"][1]
    assert len(c["per_seed"]) == 3 and c["seed_spread"]["min"] <= c["seed_spread"]["max"]


def test_judged_measurement_with_a_named_judge(tiny_llama, tiny_gpt2, tiny_text, tmp_path, monkeypatch):
    """Part p's judged best-of-N end to end on a tiny model: a judge named in $SEMPHASE_JUDGE_MODEL is
    loaded and joins both comparisons; the evidence records prompt, chunk and seed counts, N and the
    generation length; the generator itself is refused as its own judge; each (condition, seed) is a
    cache unit, so a second call measures nothing."""
    from semphase import sweeps
    from semphase.budgets import get_budget
    from semphase.cache import EvidenceStore
    from semphase.data import load_eval_tokens
    from semphase.errors import SemphaseError
    from semphase.experiments.exp10 import linearise
    from semphase.experiments.exp10 import measure as M
    from semphase.experiments.exp10 import run as R
    from semphase.models import load_model

    lm = load_model(str(tiny_llama), "cpu")
    ts = load_eval_tokens(lm.tokenizer, 256, 128, text_file=str(tiny_text))
    eval_ts = load_eval_tokens(lm.tokenizer, 256, 128, text_file=str(tiny_text), start=256)
    prompt_ts = load_eval_tokens(lm.tokenizer, None, 128, text_file=str(tiny_text), start=256)
    store = EvidenceStore(tmp_path / "cache")
    run = R.Exp10Run(lm, ts, get_budget("smoke"), store, sweeps.Progress(False), 1, 0, None, eval_ts)
    ev = {"layers": list(range(lm.n_layers)), "all_layers": True, "n_heads_total": lm.n_heads_total}
    M._baseline(run, ev)
    for part in "ij":
        linearise.PART_FUNCTIONS[part](run, ev)
    conds = recovery.conditions(run, ev)
    jb = recovery.JudgedBudget(prompts=6, min_chunks=4, prompt_tokens=12, new_tokens=6, candidates=2, ns=(1, 2), seeds=2)
    monkeypatch.setenv(recovery.JUDGE_ENV, str(tiny_gpt2))
    j = recovery.judged_best_of_n(run, conds, jb, prompt_ts)
    assert j["judges"] == [str(tiny_gpt2)] and "independent judge" in j["judge_note"]
    assert j["prompts"]["n"] == 6 and j["prompts"]["n_chunks"] == 6 and j["prompts"]["enough_chunks"]
    assert (j["seeds"], j["n"], j["prompts"]["generated_tokens"]) == ([0, 1], 2, 6)
    for comp in ("original", "equal_compute"):
        assert set(j["comparisons"][comp]) == {"reference_f1", "scorer_ppl", f"judge_nll:{tiny_gpt2}"}
        for c in j["comparisons"][comp].values():
            assert c["n_clusters"] == 6 and len(c["per_seed"]) == 2 and c["ci95"][0] <= c["value"] <= c["ci95"][1]
    assert set(j["reference_nll"]["per_condition"]) == set(list(conds)[:2])
    computed = store.stats["computed"]
    again = recovery.judged_best_of_n(run, conds, jb, prompt_ts)
    assert store.stats["computed"] == computed and again["comparisons"] == j["comparisons"]
    monkeypatch.setenv(recovery.JUDGE_ENV, str(tiny_llama))
    with pytest.raises(SemphaseError, match="independent judge"):
        recovery.judged_best_of_n(run, conds, jb, prompt_ts)
