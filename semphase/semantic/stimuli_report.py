"""``python -m semphase stimuli check FILE --model M``: what a stimuli file gives on one model.

Nothing here decides whether a word can be measured: :func:`~semphase.semantic.stimuli.check_stimuli`
does, as it does for exp1-exp3, and this module prints its verdict, one line per item:

* per word: measured (how many direction and graded prompts) or dropped (with every problem the
  checker found, one line each); each prompt dropped from the test set (or from a direction set)
  and why; the token counts of the measured graded prompts per level, whether the word is
  length-matched (a fact) and the position control exp1-exp3 will apply
  (:func:`~semphase.semantic.measure.position_fit`: none needed, the within-word regression
  adjustment, or none possible); the token counts of the direction prompts; each near-duplicate
  pair of a graded and a direction prompt (:func:`~semphase.semantic.stimuli.overlapping_pairs`,
  the checker's own rule: |graded ∩ direction| / |graded| > 0.5);
* per control word and per v1 pair: measured or dropped, and why;
* a header (file, model, tokenization) and a summary line.

Token counts use the checker's encoding (:func:`~semphase.semantic.stimuli.encode`), for every
prompt, including those whose target is not found.
"""
from __future__ import annotations

from .stimuli import Stimuli, StimuliCheck, encode, overlapping_pairs


def _one_line(text: str) -> str:
    """No item may spill over two lines (a prompt could hold a newline)."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _range(counts: list[int]) -> str:
    return "none" if not counts else (f"{min(counts)}" if min(counts) == max(counts) else f"{min(counts)}-{max(counts)}")


def _plural(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _level_name(level: int) -> str:
    return f"{level:+d}" if level else "0"


def _position_line(word: str, check: StimuliCheck) -> str:
    """How exp1-exp3 will control the target position of a measured word."""
    import numpy as np

    from .measure import POSITION_CONTROL_SHORT, POSITION_NONE, POSITION_NOT_SEPARABLE, design_h, position_fit

    graded = check.graded_prompts(word)
    pos = np.array([check.encoded[p.text].position for p in graded], float)
    h = design_h(np.array([p.level for p in graded], float))
    if np.ptp(pos) == 0:
        return f"word {word}: position control: {POSITION_NONE}"
    corr = float(np.corrcoef(h, pos)[0, 1]) if np.ptp(h) > 0 else float("nan")
    facts = f"corr(h, position) {corr:+.2f}"
    if position_fit(h, pos) is None:
        return f"word {word}: position control: {POSITION_NOT_SEPARABLE} ({facts})"
    warn = "; h and the position are nearly collinear (|corr| > 0.9): the adjusted σ will be imprecise" \
        if abs(corr) > 0.9 else ""
    return f"word {word}: position control: {POSITION_CONTROL_SHORT} ({facts}{warn})"


def word_lines(word: str, stimuli: Stimuli, check: StimuliCheck, tokenizer) -> list[str]:
    """The lines of one word: status, dropped prompts, graded token counts and length-matching,
    the position control, direction token counts, near-duplicates, problems."""
    ws = stimuli.words[word]
    choice = check.tokenization
    problems = check.word_problems.get(word) or []
    dropped = check.dropped.get(word) or []
    pairs = overlapping_pairs(ws)
    head = f"word {word} ({ws.senses['A']} / {ws.senses['B']})"
    graded = check.graded_prompts(word)
    n_dir = {s: len(check.direction[word][s]) for s in ("A", "B")}
    n_graded_dropped = sum(d.level is not None for d in dropped)
    if problems:
        status = f"{head}: dropped: {_plural(len(problems), 'problem')} (listed below)"
    else:
        levels = sorted({p.level for p in graded})
        span = ("-4..+4" if levels == list(range(-4, 5)) else
                f"{len(levels)} levels ({', '.join(map(_level_name, levels))})")
        status = (f"{head}: measured: {sum(n_dir.values())} direction prompts (A {n_dir['A']}, B {n_dir['B']}), "
                  f"{len(graded)} graded prompts at {span}"
                  + (f"; {_plural(len(dropped), 'prompt')} dropped (listed below: "
                     f"{n_graded_dropped} from the test set, {len(dropped) - n_graded_dropped} from a direction set)"
                     if dropped else ""))
    lines = [status]
    lines += [f"word {word}: dropped prompt: {d.describe()}" for d in dropped]
    per_level: dict[int, list[int]] = {}
    for p in graded:
        per_level.setdefault(p.level, []).append(len(encode(tokenizer, p.text, choice)))
    every = [n for counts in per_level.values() for n in counts]
    if every:
        matched = len(set(every)) == 1
        levels = "; ".join(f"{_level_name(lv)}: {', '.join(map(str, per_level[lv]))}" for lv in sorted(per_level))
        fact = (f"length-matched: yes, every graded prompt has {every[0]} tokens" if matched else
                f"length-matched: no, {_range(every)} tokens, so the target's position varies across prompts")
        lines.append(f"word {word}: graded tokens per level: {levels} ({fact})")
    if not problems and graded:
        lines.append(_position_line(word, check))
    dir_counts = {s: [len(encode(tokenizer, t, choice)) for t in ws.direction[s]] for s in ("A", "B")}
    lines.append(f"word {word}: direction tokens: A {_range(dir_counts['A'])}, B {_range(dir_counts['B'])}")
    lines += [f"word {word}: near-duplicate: {p.describe()}" for p in pairs]
    lines += [f"word {word}: problem: {p}" for p in problems]
    return lines


def check_lines(stimuli: Stimuli, check: StimuliCheck, tokenizer, model: str) -> tuple[list[str], list[str]]:
    """Every line of ``semphase stimuli check`` and the words that will be measured."""
    tok = check.tokenization
    st = stimuli.describe()
    lines = [f"stimuli: {stimuli.source} (name {stimuli.name!r}, version {stimuli.version}, sha256 "
             f"{stimuli.sha256[:16]}): {_plural(st['n_words'], 'word')}, {st['n_direction_prompts']} direction and "
             f"{st['n_graded_prompts']} graded prompts, {_plural(st['n_controls'], 'control word')}, "
             f"{_plural(st['n_v1_pairs'], 'v1 pair')}",
             f"model: {model}, tokenizer {tok['tokenizer']} (vocabulary {tok['vocab_size']}), BOS "
             + (f"{tok['bos_token']!r} prepended" if tok["bos_prepended"] else
                "added by the tokenizer" if tok["tokenizer_adds_bos"] else "none")]
    for word in stimuli.words:
        lines += word_lines(word, stimuli, check, tokenizer)
    usable = check.usable_words(stimuli)
    for word, texts in stimuli.controls.items():
        problems = check.control_problems.get(word) or []
        lines += ([f"control {word}: measured ({_plural(len(texts), 'prompt')})"] if not problems else
                  [f"control {word}: dropped: {p}" for p in problems])
    for i, pair in enumerate(stimuli.v1_pairs):
        head = f"v1 pair {i} ({pair['word']}: {pair['target_last']!r} + {pair['context_after']!r})"
        problems = list(check.pair_problems.get(i) or [])
        if not problems and pair["word"] not in usable:  # exp1's rule: σ needs the word's direction
            problems = [f"its word {pair['word']!r} is not measured on this model (no direction for σ)"]
        lines += [f"{head}: measured"] if not problems else [f"{head}: dropped: {p}" for p in problems]
    dropped = [w for w in stimuli.words if w not in usable]
    controls = check.usable_controls(stimuli)
    n_pairs = sum(1 for i in check.usable_pairs(stimuli) if stimuli.v1_pairs[i]["word"] in usable)
    n_prompts = sum(len(check.dropped.get(w) or []) for w in usable)
    not_matched = [w for w in usable if not check.length_matched(w)]
    lines.append(f"summary: {len(usable)} of {_plural(len(stimuli.words), 'word')} measured on {model}"
                 + (f" (dropped: {', '.join(dropped)})" if dropped else "")
                 + f"; {_plural(n_prompts, 'prompt')} of measured words dropped; "
                 + (f"{len(not_matched)} measured word(s) not length-matched ({', '.join(not_matched)}): position "
                    "controlled as their lines say" if not_matched else "every measured word length-matched")
                 + f"; {len(controls)} of {_plural(len(stimuli.controls), 'control word')}; {n_pairs} of "
                 f"{_plural(len(stimuli.v1_pairs), 'v1 pair')}")
    return [_one_line(line) for line in lines], usable
