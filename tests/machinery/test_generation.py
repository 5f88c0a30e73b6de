"""Generation for exp10P (science.md 14): the key/value cache against full forwards, with and
without replaced heads; seeded sampling; best-of-N and self-refinement measures."""
import math

import numpy as np
import pytest
import torch

from semphase.ablation import token_nll
from semphase.errors import SemphaseError
from semphase.generation import (best_of_n, bigram_f1, continuation_nll, distinct_n, generate, kv_cache_compat,
                                 self_refine)
from semphase.models import load_model

pytestmark = pytest.mark.machinery

ARCHS = ["tiny_llama", "tiny_gpt2", "tiny_neox"]


@pytest.fixture(scope="module", params=ARCHS)
def lm(request):
    return load_model(str(request.getfixturevalue(request.param)), "cpu")


@pytest.fixture(scope="module")
def llama(tiny_llama):
    return load_model(str(tiny_llama), "cpu")


def _prompts(n: int = 2, length: int = 12, seed: int = 1) -> torch.Tensor:
    return torch.randint(2, 290, (n, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("replaced", [[], [(1, 0, "relu"), (2, 3, "relu")], [(0, 1, "kernel"), (2, 2, "kernel")],
                                      [(0, 0, "l1"), (1, 1, "kernel"), (1, 3, "zero")]],
                         ids=["baseline", "relu", "kernel", "mixed"])
def test_cached_generation_equals_full_forwards(lm, replaced):
    prompts = _prompts()
    cached = generate(lm, prompts, 12, replaced=replaced, use_cache=True, keep_logits=True)
    full = generate(lm, prompts, 12, replaced=replaced, use_cache=False, keep_logits=True)
    assert cached.used_cache and cached.cache_note == ""
    assert not full.used_cache
    assert torch.equal(cached.tokens, full.tokens)
    assert (cached.logits - full.logits).abs().max().item() <= 1e-5
    # and every step's logits equal a plain forward of the final text (teacher forcing)
    from semphase.ablation import assignment_hooks

    _, hooks = assignment_hooks(lm.bridge, replaced)
    with torch.no_grad():
        plain = lm.bridge.run_with_hooks(cached.tokens[:, :-1], fwd_hooks=hooks, use_cache=False)
    assert (plain[:, prompts.shape[1] - 1:] - cached.logits).abs().max().item() <= 1e-5


def test_the_cache_shim_is_what_makes_cached_steps_right(llama):
    """TransformerLens 4.3 reads ``past_key_values``; transformers 5 passes ``cache``: with the
    shim a cached step equals the full forward (without it, on this stack, it does not)."""
    tokens = _prompts(1, 10)[0].view(1, -1)
    with torch.no_grad():
        full = llama.bridge(tokens, return_type="logits", use_cache=False)
        with kv_cache_compat(llama.bridge):
            _, cache = llama.bridge(tokens[:, :7], return_type="logits_and_cache", use_cache=True)
            step, _ = llama.bridge(tokens[:, 7:], return_type="logits_and_cache", use_cache=True, past_key_values=cache)
    assert (step - full[:, 7:]).abs().max().item() <= 1e-5
    assert all(not attn._forward_pre_hooks for attn in (b.attn for b in llama.bridge.blocks))  # removed on exit


def test_a_kind_that_cannot_use_the_cache_falls_back_and_says_so(llama):
    prompts = _prompts()
    g = generate(llama, prompts, 6, replaced=[(1, 2, "kernel_quadratic")], use_cache=True, keep_logits=True)
    assert not g.used_cache and "kernel_quadratic cannot use the key/value cache" in g.cache_note
    k = generate(llama, prompts, 6, replaced=[(1, 2, "kernel")], use_cache=True, keep_logits=True)
    assert k.used_cache
    assert (g.logits - k.logits).abs().max().item() <= 1e-5  # the same operator, two forms


def test_seeded_sampling_is_reproducible(llama):
    prompts = _prompts()
    a = generate(llama, prompts, 16, do_sample=True, temperature=0.8, seed=5)
    b = generate(llama, prompts, 16, do_sample=True, temperature=0.8, seed=5, use_cache=False)
    c = generate(llama, prompts, 16, do_sample=True, temperature=0.8, seed=6)
    assert torch.equal(a.tokens, b.tokens)
    assert not torch.equal(a.tokens, c.tokens)
    greedy = generate(llama, prompts, 16)
    top1 = generate(llama, prompts, 16, do_sample=True, temperature=0.8, top_k=1, seed=7)
    assert torch.equal(greedy.tokens, top1.tokens)


def test_generation_input_is_checked(llama):
    with pytest.raises(SemphaseError, match="exceeds the model's context"):
        generate(llama, _prompts(1, 250), 10)
    with pytest.raises(SemphaseError, match="positive temperature"):
        generate(llama, _prompts(), 2, do_sample=True, temperature=0.0)
    with pytest.raises(SemphaseError, match="best-of-N sizes"):
        best_of_n(llama, llama, _prompts(), _prompts(), n_candidates=3, ns=(1, 5), new_tokens=4)


def test_distinct_n_and_bigram_f1_by_hand():
    assert distinct_n([1, 2, 1, 2, 1, 2]) == pytest.approx(2 / 5)
    assert distinct_n([1, 2, 3, 4]) == 1.0
    assert math.isnan(distinct_n([7]))
    assert bigram_f1([1, 2, 3], [1, 2, 3]) == 1.0
    assert bigram_f1([1, 2, 3], [3, 2, 1]) == 0.0
    # candidate bigrams (1,2),(2,3),(3,9); reference (1,2),(2,3),(3,4),(4,5): 2 shared -> P 2/3, R 2/4
    assert bigram_f1([1, 2, 3, 9], [1, 2, 3, 4, 5]) == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))


def test_continuation_nll_is_the_plain_token_loss(llama):
    ctx, cont = _prompts(2, 9), _prompts(2, 5, seed=3)
    nll = continuation_nll(llama, ctx, cont)
    full = torch.cat([ctx, cont], 1)
    with torch.no_grad():
        ref = token_nll(llama.bridge(full, return_type="logits", use_cache=False), full)[:, 8:]
    assert nll.shape == (2, 5) and torch.allclose(nll, ref, atol=1e-6)


def test_best_of_n_is_reproducible_and_monotone(llama):
    prompts, refs = _prompts(3, 10), _prompts(3, 8, seed=9)
    kw = dict(n_candidates=3, ns=(1, 2, 3), new_tokens=8, temperature=0.8, seed=11,
              replaced=[(1, 0, "relu"), (2, 1, "kernel")])
    a = best_of_n(llama, llama, prompts, refs, **kw)
    b = best_of_n(llama, llama, prompts, refs, **kw)
    for x in (a, b):
        x.pop("generation_seconds")
    assert a == b  # every number, every candidate
    c = best_of_n(llama, llama, prompts, refs, **dict(kw, seed=12))
    assert [p["candidates"] for p in c["per_prompt"]] != [p["candidates"] for p in a["per_prompt"]]
    # picking the lowest scorer perplexity among more candidates never raises the picked one, per prompt
    for p in a["per_prompt"]:
        picks = [min(p["scorer_ppl"][:n]) for n in (1, 2, 3)]
        assert picks == sorted(picks, reverse=True)
        assert all(0.0 <= f <= 1.0 for f in p["reference_f1"])
        assert np.isfinite(p["reference_nll"])
    assert a["best_of"]["3"]["scorer_ppl"]["mean"] <= a["best_of"]["1"]["scorer_ppl"]["mean"]
    # the reference likelihood is the generator condition's loss on the true continuation
    ref0 = float(continuation_nll(llama, prompts[:1], refs[:1], kw["replaced"]).mean())
    assert a["per_prompt"][0]["reference_nll"] == pytest.approx(ref0, rel=1e-6)


def test_self_refinement_reports_perplexity_and_distinct2(llama):
    prompts = _prompts(2, 10)
    r = self_refine(llama, llama, prompts, iterations=3, new_tokens=6, replaced=[(1, 1, "relu")])
    assert [row["iteration"] for row in r["iterations"]] == [1, 2, 3]
    assert [row["generated_tokens"] for row in r["iterations"]] == [6, 12, 18]
    for row in r["iterations"]:
        assert all(0 < d <= 1 for d in row["distinct2"])
        assert all(p > 0 and np.isfinite(p) for p in row["ppl"])
    # greedy continuation is deterministic, and iteration 2 extends iteration 1's text
    again = self_refine(llama, llama, prompts, iterations=2, new_tokens=6, replaced=[(1, 1, "relu")])
    assert again["iterations"][1]["ppl"] == r["iterations"][1]["ppl"]
    # it stops before the model's context (256 positions here) is exceeded
    short = self_refine(llama, llama, _prompts(1, 240), iterations=3, new_tokens=6)
    assert len(short["iterations"]) == 2


def test_bench_attention_prints_both_ratios(tiny_llama, capsys):
    from semphase.cli import main

    rc = main(["bench", "attention", "--model", str(tiny_llama), "--device", "cpu", "--attn-tokens", "64",
               "--prompt-tokens", "8", "--new-tokens", "4", "--repeats", "1", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "ratio eager/kernel" in out and "same tokens: True" in out and "tokens/s" in out
    assert "every prompt in one batch" in out and "same candidates: True" in out
    assert main(["bench", "attention", "--model", str(tiny_llama), "--new-tokens", "0"]) == 2


def test_best_of_n_draws_do_not_depend_on_the_prompt_batch(llama):
    """Prompts generated together (each with its own seeded generator) give the draws of prompts
    generated one at a time: batching is a speed-up, not a change of the experiment."""
    prompts, refs = _prompts(4, 10), _prompts(4, 8, seed=9)
    kw = dict(n_candidates=3, ns=(1, 3), new_tokens=8, temperature=0.8, seed=5, replaced=[(1, 0, "relu")])
    one = best_of_n(llama, llama, prompts, refs, prompt_batch=1, **kw)
    together = best_of_n(llama, llama, prompts, refs, **kw)
    pairs = [(p, q) for p, q in zip(one["per_prompt"], together["per_prompt"])]
    assert [p["seed"] for p, _ in pairs] == [q["seed"] for _, q in pairs]
    assert [p["candidates"] for p, _ in pairs] == [q["candidates"] for _, q in pairs]
    for p, q in pairs:
        assert q["scorer_ppl"] == pytest.approx(p["scorer_ppl"], rel=1e-5)
        assert q["reference_nll"] == pytest.approx(p["reference_nll"], rel=1e-5)


def test_own_scores_equal_a_second_forward(llama):
    """keep_nll: the generating model's loss of each drawn token, read off its own (cached) steps,
    equals the loss a full forward of the finished text gives; best-of-N's ``own_scores`` uses it for
    the unmodified model and picks what the forward-scored run picks."""
    prompts, refs = _prompts(3, 10), _prompts(3, 8, seed=9)
    g = generate(llama, prompts, 8, do_sample=True, temperature=0.8, seed=3, keep_nll=True)
    assert g.token_nll.shape == (3, 8)
    assert torch.allclose(g.token_nll, continuation_nll(llama, prompts, g.new_tokens), atol=1e-4)
    kw = dict(n_candidates=3, ns=(1, 3), new_tokens=8, temperature=0.8, seed=4)
    forward = best_of_n(llama, llama, prompts, refs, **kw)
    own = best_of_n(llama, llama, prompts, refs, own_scores=True, with_reference=False, **kw)
    assert own["scorer_scores"].startswith("the generation's own steps") and own["reference_nll"] is None
    for p, q in zip(forward["per_prompt"], own["per_prompt"]):
        assert q["candidates"] == p["candidates"] and "reference_nll" not in q
        assert q["scorer_ppl"] == pytest.approx(p["scorer_ppl"], rel=1e-4)
    assert own["best_of"]["3"]["picked"] == forward["best_of"]["3"]["picked"]
    # with replaced heads the generator is not the scorer: own_scores falls back to the forward
    relu = best_of_n(llama, llama, prompts, refs, own_scores=True, replaced=[(1, 0, "relu")], **kw)
    assert "scorer_scores" not in relu


def test_judge_scores_the_candidate_after_its_prompt(llama, tiny_gpt2):
    """judge_nll: with the generator's own tokenizer it is the plain mean loss of the candidate after
    its prompt; a judge of another architecture re-encodes the text and scores it too; best-of-N
    records each judge's loss per candidate and for the picked one."""
    from semphase.generation import judge_nll

    prompts, cands = _prompts(3, 10), _prompts(3, 6, seed=5)
    same = judge_nll(llama, llama.tokenizer, prompts, cands, batch=2)
    ref = continuation_nll(llama, prompts, cands).double().mean(dim=1)
    assert same == pytest.approx(ref.tolist(), rel=1e-5)
    other = load_model(str(tiny_gpt2), "cpu")
    assert other.tokenizer is not llama.tokenizer
    theirs = judge_nll(other, llama.tokenizer, prompts, cands)
    assert len(theirs) == 3 and all(np.isfinite(theirs)) and theirs != pytest.approx(same)
    refs = _prompts(3, 8, seed=9)
    res = best_of_n(llama, llama, prompts, refs, n_candidates=2, ns=(1, 2), new_tokens=6, seed=1,
                    judges={"gpt2-judge": other})
    assert res["judges"] == ["gpt2-judge"]
    for p in res["per_prompt"]:
        assert len(p["judge_nll"]["gpt2-judge"]) == 2 and all(np.isfinite(p["judge_nll"]["gpt2-judge"]))
    picked = [p["judge_nll"]["gpt2-judge"][k] for p, k in zip(res["per_prompt"], res["best_of"]["2"]["picked"])]
    assert res["best_of"]["2"]["judge_nll"]["gpt2-judge"]["mean"] == pytest.approx(np.mean(picked))


@pytest.mark.parametrize("replaced", [[], [(1, 0, "relu")], [(0, 1, "kernel"), (2, 2, "kernel")],
                                      [(1, 1, "kernel_quadratic")]], ids=["baseline", "relu", "kernel", "no-cache"])
def test_a_prompt_read_once_for_its_candidates_gives_the_same_draws(lm, replaced):
    """generate(repeats=k): each prompt is read once and its keys/values (and the feature-map attention's
    running state) repeated for its k candidates: the same logits and draws as k copies of the prompt."""
    prompts = _prompts(2, 9)
    rows = [(slice(0, 3), 11), (slice(3, 6), 12)]
    kw = dict(do_sample=True, temperature=0.8, replaced=replaced, keep_logits=True, row_seeds=rows, keep_nll=True)
    copies = generate(lm, prompts.repeat_interleave(3, dim=0), 7, **kw)
    shared = generate(lm, prompts, 7, repeats=3, **kw)
    assert torch.equal(shared.tokens, copies.tokens)
    assert (shared.logits - copies.logits).abs().max().item() <= 1e-5
    assert torch.allclose(shared.token_nll, copies.token_nll, atol=1e-5)
    assert shared.used_cache == copies.used_cache == (replaced != [(1, 1, "kernel_quadratic")])
