"""Report pieces the semantic experiments (exp1-exp3, later exp8) share: their provenance rows
(stimuli, tokenization, forward passes) and the words-measured paragraph."""
from __future__ import annotations

from pathlib import Path

from ..report import pct, save_figure

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


def words_measured(ev: dict) -> list[str]:
    """Which words were measured, and each skipped one with its first problem."""
    skipped = ev.get("words_skipped") or {}
    lines = ["", f"Words measured: {len(ev['words_used'])} of {ev['stimuli']['n_words']}."]
    if skipped:
        lines.append("Skipped on this model (each with its first problem):")
        lines += [f"- {w}: {p[0]}" + (f" (+{len(p) - 1} more)" if len(p) > 1 else "") for w, p in skipped.items()]
    else:
        lines.append("No word was skipped: every target is one token found by exact match at the last position, "
                     "and each word's graded prompts have equal token counts.")
    for key, label in (("controls_skipped", "control words"), ("v1_pairs_skipped", "v1 pairs")):
        if ev.get(key):
            lines.append(f"Skipped {label}: " + "; ".join(f"{k}: {v[0]}" for k, v in ev[key].items()) + ".")
    return lines
