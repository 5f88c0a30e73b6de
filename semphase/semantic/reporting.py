"""Report pieces the semantic experiments (exp1-exp3, later exp8) share: their provenance rows
(stimuli, tokenization, forward passes) and the words-measured paragraph (words skipped, prompts
dropped, and per word whether it is length-matched and how its target position was controlled)."""
from __future__ import annotations

from pathlib import Path

from ..report import fmt, pct, save_figure

STIMULI_NOTE = ("Reproduction of the original's exact numbers needs the original stimuli, which this project does "
                "not copy: exact-number reproduction is out of scope, and no R-test is run here.")


def save(fig, path: Path) -> str:
    """Save a figure with room for its suptitle."""
    return save_figure(fig, path, rect=(0, 0, 1, 0.97))


def pct0(x) -> str:
    """A fraction as a whole percentage ("50 %")."""
    return pct(x, 0, signed=False)


def provenance_rows(ev: dict) -> list[tuple[str, object]]:
    st = ev["stimuli"]
    tim = ev.get("timing", {})
    rows: list[tuple[str, object]] = [
        ("stimuli", f"{st['source']} (sha256 {st['sha256'][:16]}, {st.get('name', 'n/a')} v{st.get('version', 'n/a')}): "
                    f"{st['n_words']} words, {st.get('n_direction_prompts', 'n/a')} direction + "
                    f"{st['n_graded_prompts']} graded prompts, {st.get('n_controls', 'n/a')} control words, "
                    f"{st.get('n_v1_pairs', 'n/a')} v1 pairs"),
    ]
    tok = ev.get("tokenization")
    if tok:
        rows.append(("tokenization", f"{tok['rule']}; BOS {tok['bos_token']!r} (id {tok['bos_token_id']}) prepended: "
                                     f"{tok['bos_prepended']}"))
    if ev.get("batching"):
        rows.append(("batching", ev["batching"]))
    if ev.get("n_null") is not None:
        rows.append(("null draws", ev["n_null"]))
    rows.append(("forward passes", f"{tim.get('forward_seconds', 0):.1f} s for {tim.get('forward_prompts', 0)} prompts "
                                   "(0: every residual came from the evidence cache)"))
    return rows


def _signed(x) -> str:
    """A correlation with its sign, two decimals (no "-0.00")."""
    return "n/a" if x is None else f"{x + 0.0:+.2f}".replace("-0.00", "+0.00")


def position_word_line(word: str, rec: dict) -> str:
    """One measured word that is not length-matched: its token counts and how position was controlled."""
    lo, hi = rec["n_tokens"]
    plo, phi = rec["target_position"]
    head = (f"{word}: not length-matched (graded prompts {lo}-{hi} tokens, the target at {rec['n_positions']} positions "
            f"{plo}-{phi}; corr(h, position) {_signed(rec.get('corr_h_position'))}, corr(|h|, position) "
            f"{_signed(rec.get('corr_abs_h_position'))})")
    if rec.get("control") != "adjusted":
        return f"{head}; position NOT controlled: {rec.get('method', 'n/a')}."
    b_raw, p_raw = rec["h_slope_raw"][-1], rec["h_p_raw"][-1]
    b_adj, p_adj = rec["h_coef_adjusted"][-1], rec["h_p_adjusted"][-1]
    verdict = "survives" if rec["h_survives_final_layer"] else "does NOT survive"
    line = (f"{head}; position controlled by the within-word regression adjustment. Final layer: h's slope "
            f"{fmt(b_raw, 3)} as measured (p = {fmt(p_raw, 2)}), {fmt(b_adj, 3)} with the position covariate (p = "
            f"{fmt(p_adj, 2)}; position coefficient {fmt(rec['position_coef'][-1], 3)} per token, p = "
            f"{fmt(rec['position_p'][-1], 2)}): the level effect {verdict} the position covariate; h is significant "
            f"(p < 0.05) at {rec['n_layers_h_significant_raw']} of {rec['n_layers']} layers as measured and "
            f"{rec['n_layers_h_significant_adjusted']} with the position covariate")
    if rec.get("collinear"):
        line += "; h and the position are nearly collinear (|corr| > 0.9), so the adjusted σ is imprecise"
    return line + "."


def position_lines(ev: dict) -> list[str]:
    """Whether the measured words are length-matched and, per word that is not, how its target
    position was controlled (evidence measured before the record: every word was length-matched)."""
    words = ev.get("words_used") or []
    if not words:
        return []
    pc = ev.get("position_control")
    if pc is None:
        return ["Position: measured when every word had to be length-matched, so the target position is constant "
                "within each word (no control needed)."]
    not_matched = pc.get("words_not_length_matched") or []
    if not not_matched:
        return ["Position: every measured word is length-matched (one token count over its graded prompts), so the "
                "target position is constant within each word and needs no control."]
    lines = [f"Position: {len(not_matched)} of {len(words)} measured words are not length-matched (the target position "
             "varies with the prompt, and usually grows with the context level)"
             + (f"; the other {len(words) - len(not_matched)} are (one target position each: no control needed)"
                if len(words) > len(not_matched) else "")
             + f". Every level comparison below uses, for a word that is not length-matched, σ after this control: "
               f"{pc['method']}. C6's position test uses σ as measured with the position as a covariate. Per word:"]
    lines += ["- " + position_word_line(w, (ev["words"].get(w) or {}).get("position") or {}) for w in not_matched
              if (ev["words"].get(w) or {}).get("position")]
    return lines


def words_measured(ev: dict) -> list[str]:
    """Which words were measured, each skipped one with its first problem, the prompts dropped from
    a set (one line each), and how the target position was controlled."""
    skipped = ev.get("words_skipped") or {}
    lines = ["", f"Words measured: {len(ev['words_used'])} of {ev['stimuli']['n_words']}."]
    if skipped:
        lines.append("Skipped on this model (each with its first problem):")
        lines += [f"- {w}: {p[0]}" + (f" (+{len(p) - 1} more)" if len(p) > 1 else "") for w, p in skipped.items()]
    else:
        lines.append("No word was skipped: every target is one token found by exact match at the last position.")
    dropped = ev.get("prompts_dropped") or {}
    if dropped:
        n = sum(len(v) for v in dropped.values())
        lines.append(f"Prompts dropped ({n}; each word is measured without them), one line each:")
        lines += [f"- {w}: {d}" for w, ds in dropped.items() for d in ds]
    near = ev.get("near_duplicates_kept") or {}
    if near:
        lines.append("Near-duplicates kept in the test set (a graded prompt sharing more than half of its words with a "
                     "direction prompt of its word; reported, not dropped; `semphase stimuli check` lists each pair): "
                     + ", ".join(f"{w} {len(v)}" for w, v in near.items()) + ".")
    lines += position_lines(ev)
    for key, label in (("controls_skipped", "control words"), ("v1_pairs_skipped", "v1 pairs")):
        if ev.get(key):
            lines.append(f"Skipped {label}: " + "; ".join(f"{k}: {v[0]}" for k, v in ev[key].items()) + ".")
    return lines
