"""The prompt sets of the semantic-permeation experiments: loading, validation, tokenization.

The packaged set is ``semphase/data/stimuli.json`` (its ``format`` field documents the layout);
``--stimuli FILE`` replaces it with any file in the same format. :func:`load_stimuli` checks
the structure and raises a :class:`~semphase.errors.SemphaseError` naming what is wrong;
:func:`check_stimuli` checks the content against one model's tokenizer and decides, per word,
which prompts are measured (science.md 0.3). Only what makes a measurement impossible removes a
word; a prompt that would bias the test is dropped from the test set instead, with one line.

Dropped from the test set (:func:`split_prompts`; each a :class:`DroppedPrompt` line, the word
stays):

* a graded (test) prompt that is also a direction prompt, compared case-insensitively with
  whitespace collapsed: it stays in the direction set and leaves the test set;
* a graded prompt at two different levels (its level is ambiguous: every copy leaves), and the
  repeat of a graded prompt at one level;
* a direction prompt of both senses leaves both direction sets; a repeated direction prompt
  leaves once.

Reported, kept in the test set: a graded prompt that shares more than half of its words with a
direction prompt of the same word (:func:`overlapping_pairs`, a near-duplicate: it repeats much
of the data that builds the direction; the packaged file has none). The measure
(:func:`word_overlap`): each prompt becomes the set of its words, split on whitespace,
lower-cased, with punctuation (ASCII ``string.punctuation`` and Unicode category P) stripped
from both ends of each word (a word that is only punctuation is dropped); overlap =
|graded ∩ direction| / |graded|, the share of the graded prompt's distinct words that also occur
in the direction prompt (the target word counts, like every other word); a pair is flagged when
overlap > 0.5 (:data:`OVERLAP_LIMIT`). Every graded prompt (levels 0 and 1-4 of both senses) is
compared with every direction prompt of its word (both senses). It is not dropped: on short
prompts the measure flags almost any prompt that shares an article and the target with a
direction prompt (a bare "the bank" shares 2 of its 2 words with "she went to the bank").

What removes a word (a problem line each; the word is skipped on that model and listed):

* a prompt that does not end with its target word;
* a target that is not one token found by the exact-match pass scanning from the end, or
  not at the last position (direction and graded prompts end with the target);
* fewer than two direction prompts of a sense left (a leave-one-out direction needs two), or
  graded prompts left at fewer than two levels (a level effect needs two).

Graded prompts of one word need not have equal token counts: a word that is not length-matched
is measured, and the experiments control the target position (science.md 2, weak point v;
:func:`semphase.semantic.measure.position_fit`). Whether a word is length-matched is a fact of
its measured graded prompts (:meth:`StimuliCheck.length_matched`).

Tokenization: the tokenizer's own encoding without special tokens, with the tokenizer's BOS
token prepended when it has one and does not add it itself (as TransformerLens does for
GPT-2 string inputs). :func:`tokenization_choice` records the choice.
"""
from __future__ import annotations

import hashlib
import json
import string
import unicodedata
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..errors import NoMeasurableWords, SemphaseError

LEVELS = (1, 2, 3, 4)
SENSES = ("A", "B")
OVERLAP_LIMIT = 0.5  # a graded prompt sharing more than this share of its words with a direction prompt is flagged
ORIGINAL_STIMULI_NAME = "original-gradient-prompts"  # a stimuli file converted from the original's prompts:
# reproduction tests of numbers derived from g(l/L) (exp8, exp9) apply only to it


@dataclass(frozen=True)
class Prompt:
    """One prompt of a word: its set ("direction", "graded"), sense and nominal level."""

    text: str
    word: str
    set: str
    sense: str | None  # "A", "B" or None (neutral)
    level: int | None  # graded: +k for sense A, -k for sense B, 0 neutral; None for direction


@dataclass
class WordStimuli:
    word: str
    senses: dict
    in_original: bool
    direction: dict  # {"A": [str], "B": [str]}
    graded: dict  # {"0": [str], "A": {"1": [str], ...}, "B": {...}}

    def direction_prompts(self) -> list[Prompt]:
        return [Prompt(t, self.word, "direction", s, None) for s in SENSES for t in self.direction[s]]

    def graded_prompts(self) -> list[Prompt]:
        """Ordered by nominal level, -4 (strong B) .. 0 (neutral) .. +4 (strong A)."""
        out = []
        for k in reversed(LEVELS):
            out += [Prompt(t, self.word, "graded", "B", -k) for t in self.graded["B"][str(k)]]
        out += [Prompt(t, self.word, "graded", None, 0) for t in self.graded["0"]]
        for k in LEVELS:
            out += [Prompt(t, self.word, "graded", "A", k) for t in self.graded["A"][str(k)]]
        return out

    def sets(self) -> dict[str, list[str]]:
        """Every named set of prompts of this word (for the disjointness check)."""
        named = {"direction A": self.direction["A"], "direction B": self.direction["B"], "graded level 0": self.graded["0"]}
        for s in SENSES:
            for k in LEVELS:
                named[f"graded {s}{k}"] = self.graded[s][str(k)]
        return named


@dataclass
class Stimuli:
    source: str
    sha256: str
    name: str
    version: object
    words: dict[str, WordStimuli]
    controls: dict[str, list[str]] = field(default_factory=dict)
    v1_pairs: list[dict] = field(default_factory=list)

    def describe(self) -> dict:
        return {
            "source": self.source,
            "sha256": self.sha256,
            "name": self.name,
            "version": self.version,
            "n_words": len(self.words),
            "n_original_words": sum(w.in_original for w in self.words.values()),
            "n_direction_prompts": sum(len(w.direction_prompts()) for w in self.words.values()),
            "n_graded_prompts": sum(len(w.graded_prompts()) for w in self.words.values()),
            "n_controls": len(self.controls),
            "n_control_prompts": sum(len(v) for v in self.controls.values()),
            "n_v1_pairs": len(self.v1_pairs),
        }


def packaged_path() -> Path:
    return Path(str(resources.files("semphase") / "data" / "stimuli.json"))


def _fail(source: str, what: str) -> SemphaseError:
    return SemphaseError(f"stimuli file {source!r}: {what}; fix the file (its 'format' field, or the packaged "
                         "semphase/data/stimuli.json, shows the layout) or pass another with --stimuli FILE.")


def _strings(value, source: str, where: str, min_len: int = 1) -> list[str]:
    if not isinstance(value, list) or len(value) < min_len or not all(isinstance(x, str) and x.strip() for x in value):
        raise _fail(source, f"{where} must be a list of at least {min_len} non-empty string(s)")
    return list(value)


def parse_stimuli(doc: dict, source: str = "<dict>", sha256: str | None = None) -> Stimuli:
    """Build :class:`Stimuli` from a decoded document, checking its structure."""
    if not isinstance(doc, dict) or not isinstance(doc.get("words"), dict) or not doc["words"]:
        raise _fail(source, "it needs a non-empty 'words' object")
    words = {}
    for word, spec in doc["words"].items():
        if not isinstance(word, str) or not word.strip() or word != word.strip() or " " in word:
            raise _fail(source, f"word {word!r} must be one word without spaces")
        if not isinstance(spec, dict):
            raise _fail(source, f"words.{word} must be an object")
        senses = spec.get("senses")
        if not isinstance(senses, dict) or set(senses) != set(SENSES):
            raise _fail(source, f"words.{word}.senses must be an object with keys A and B")
        direction = spec.get("direction")
        if not isinstance(direction, dict) or set(direction) != set(SENSES):
            raise _fail(source, f"words.{word}.direction must be an object with keys A and B")
        # Two per sense at least: a leave-one-out direction needs one left.
        direction = {s: _strings(direction[s], source, f"words.{word}.direction.{s}", 2) for s in SENSES}
        graded = spec.get("graded")
        if not isinstance(graded, dict) or set(graded) != {"0", "A", "B"}:
            raise _fail(source, f"words.{word}.graded must be an object with keys '0', 'A' and 'B'")
        g = {"0": _strings(graded["0"], source, f"words.{word}.graded.0")}
        for s in SENSES:
            levels = graded[s]
            if not isinstance(levels, dict) or set(levels) != {str(k) for k in LEVELS}:
                raise _fail(source, f"words.{word}.graded.{s} must be an object with keys '1' to '4'")
            g[s] = {str(k): _strings(levels[str(k)], source, f"words.{word}.graded.{s}.{k}") for k in LEVELS}
        words[word] = WordStimuli(word, {s: str(senses[s]) for s in SENSES}, bool(spec.get("in_original", False)),
                                  direction, g)
    controls = doc.get("controls", {}) or {}
    if not isinstance(controls, dict):
        raise _fail(source, "'controls' must be an object {word: [prompt]}")
    controls = {w: _strings(v, source, f"controls.{w}") for w, v in controls.items()}
    pairs = doc.get("v1_pairs", []) or []
    if not isinstance(pairs, list):
        raise _fail(source, "'v1_pairs' must be a list")
    for i, p in enumerate(pairs):
        if not isinstance(p, dict) or not all(isinstance(p.get(k), str) and p.get(k).strip()
                                              for k in ("word", "target_last", "context_after")):
            raise _fail(source, f"v1_pairs[{i}] needs string fields word, target_last and context_after")
    if sha256 is None:
        sha256 = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
    return Stimuli(source, sha256, str(doc.get("name", Path(source).stem)), doc.get("version"), words, controls,
                   [dict(p) for p in pairs])


def load_stimuli(path: str | Path | None = None) -> Stimuli:
    """The packaged stimuli, or the file at ``path`` (``--stimuli``)."""
    p = packaged_path() if path is None else Path(path).expanduser()
    source = "packaged:semphase/data/stimuli.json" if path is None else str(p)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise SemphaseError(f"stimuli file {str(p)!r} cannot be read ({exc.strerror or exc}); "
                            "check the path given to --stimuli.") from None
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(source, f"it is not valid UTF-8 JSON ({exc})") from None
    return parse_stimuli(doc, source, hashlib.sha256(raw).hexdigest())


# -- overlap between graded and direction prompts ---------------------------------------------------

def _is_punctuation(ch: str) -> bool:
    """ASCII punctuation (``string.punctuation``) or any Unicode punctuation character (category P*)."""
    return ch in string.punctuation or unicodedata.category(ch).startswith("P")


def word_set(text: str) -> frozenset[str]:
    """The distinct words of ``text``: split on whitespace, lower-cased, punctuation stripped from
    both ends of each word; a word that is only punctuation is dropped."""
    out = set()
    for raw in text.split():
        start, end = 0, len(raw)
        while start < end and _is_punctuation(raw[start]):
            start += 1
        while end > start and _is_punctuation(raw[end - 1]):
            end -= 1
        if start < end:
            out.add(raw[start:end].lower())
    return frozenset(out)


def word_overlap(graded: str, direction: str) -> float:
    """|graded ∩ direction| / |graded| over the word sets of :func:`word_set`: the share of the
    graded prompt's distinct words that the direction prompt also has (0.0 for a prompt without
    words). Not symmetric: the graded (test) prompt is the denominator."""
    g = word_set(graded)
    if not g:
        return 0.0
    return len(g & word_set(direction)) / len(g)


@dataclass(frozen=True)
class OverlapPair:
    """A graded prompt that shares more than :data:`OVERLAP_LIMIT` of its words with a direction prompt."""

    word: str
    graded: str
    level: int  # nominal level: +k sense A, -k sense B, 0 neutral
    direction: str
    direction_sense: str
    shared: int  # |graded ∩ direction|
    n_graded_words: int  # |graded|
    overlap: float

    def describe(self) -> str:
        return (f"graded prompt {self.graded!r} (level {self.level:+d}) shares {self.shared} of its "
                f"{self.n_graded_words} words ({self.overlap:.2f} > {OVERLAP_LIMIT}) with direction "
                f"{self.direction_sense} prompt {self.direction!r}; the test prompt repeats the data "
                "that builds the direction")


def overlapping_pairs(word_stimuli: WordStimuli, limit: float = OVERLAP_LIMIT) -> list[OverlapPair]:
    """Every (graded prompt, direction prompt) pair of one word with :func:`word_overlap` > ``limit``,
    graded prompts in level order (-4 .. +4), direction prompts in file order (A then B)."""
    directions = [(p.text, p.sense, word_set(p.text)) for p in word_stimuli.direction_prompts()]
    found = []
    for g in word_stimuli.graded_prompts():
        gw = word_set(g.text)
        if not gw:
            continue
        for text, sense, dw in directions:
            shared = len(gw & dw)
            if shared / len(gw) > limit:
                found.append(OverlapPair(word_stimuli.word, g.text, g.level, text, sense, shared, len(gw),
                                         shared / len(gw)))
    return found


def _key(text: str) -> str:
    """How prompts are compared for identity: lower-cased, whitespace collapsed."""
    return " ".join(text.lower().split())


def _level_name(level: int | None) -> str:
    return "n/a" if level is None else (f"{level:+d}" if level else "0")


def _set_name(p: Prompt) -> str:
    if p.set == "direction":
        return f"direction {p.sense}"
    return "graded level 0" if p.level == 0 else f"graded {p.sense}{abs(p.level)}"


@dataclass(frozen=True)
class DroppedPrompt:
    """A prompt left out of a set (the word is still measured): where it was and why."""

    word: str
    text: str
    where: str  # "graded A2", "graded level 0", "direction B"
    level: int | None  # graded: the nominal level; None for a direction prompt
    reason: str

    def describe(self) -> str:
        return f"{self.where} prompt {self.text!r}: {self.reason}"


def split_prompts(word_stimuli: WordStimuli) -> tuple[dict[str, list[str]], list[Prompt], list[DroppedPrompt]]:
    """``(direction prompts kept per sense, graded prompts kept in level order, dropped prompts)``
    of one word, by the rules of the module docstring: a graded prompt that is also a direction
    prompt, at two levels, or repeated leaves the test set; a direction prompt of both senses
    leaves both direction sets, a repeated one leaves once. Near-duplicates stay (they are
    reported)."""
    ws = word_stimuli
    dropped: list[DroppedPrompt] = []
    keys = {s: [_key(t) for t in ws.direction[s]] for s in SENSES}
    both = set(keys["A"]) & set(keys["B"])
    direction: dict[str, list[str]] = {}
    for s in SENSES:
        seen: set[str] = set()
        direction[s] = []
        for text, k in zip(ws.direction[s], keys[s]):
            if k in both:
                dropped.append(DroppedPrompt(ws.word, text, f"direction {s}", None, "it is a direction prompt of both "
                                             "senses (compared case-insensitively): dropped from both direction sets"))
            elif k in seen:
                dropped.append(DroppedPrompt(ws.word, text, f"direction {s}", None,
                                             f"it repeats a direction {s} prompt: the repeat is dropped"))
            else:
                seen.add(k)
                direction[s].append(text)
    sense_of = {}
    for s in SENSES:
        for text, k in zip(ws.direction[s], keys[s]):
            sense_of.setdefault(k, (s, text))
    graded = ws.graded_prompts()
    levels_of: dict[str, list[int]] = {}
    for p in graded:
        levels_of.setdefault(_key(p.text), []).append(p.level)
    kept: list[Prompt] = []
    seen_graded: set[str] = set()
    for p in graded:
        k = _key(p.text)
        levels = sorted(set(levels_of[k]))
        if k in sense_of:
            sense, text = sense_of[k]
            same = "" if text == p.text else f" {text!r}"
            kept_for = ("a direction prompt of both senses, dropped from both" if k in both else
                        "kept for the direction")
            dropped.append(DroppedPrompt(ws.word, p.text, _set_name(p), p.level,
                                         f"it is also a direction {sense} prompt{same} (compared case-insensitively): "
                                         f"dropped from the test set, {kept_for}"))
        elif len(levels) > 1:
            dropped.append(DroppedPrompt(ws.word, p.text, _set_name(p), p.level,
                                         f"it is at {len(levels)} levels ({', '.join(map(_level_name, levels))}), so its "
                                         "level is ambiguous: every copy is dropped from the test set"))
        elif k in seen_graded:
            dropped.append(DroppedPrompt(ws.word, p.text, _set_name(p), p.level,
                                         "it repeats a prompt of the same level: the repeat is dropped"))
        else:
            seen_graded.add(k)
            kept.append(p)
    return direction, kept, dropped  # dropped: direction prompts first, then graded ones in level order


# -- tokenization --------------------------------------------------------------------------------

def tokenization_choice(tokenizer) -> dict:
    """How prompts become token ids for this tokenizer (recorded in the evidence and cache keys)."""
    bos_id = getattr(tokenizer, "bos_token_id", None)
    probe = tokenizer("a", add_special_tokens=True).input_ids
    adds_bos = bos_id is not None and len(probe) > 0 and probe[0] == bos_id
    prepend = bos_id is not None and not adds_bos
    return {
        "rule": "tokenizer(text, add_special_tokens=False), with the tokenizer's BOS token prepended when it has "
                "one and does not add it itself" + ("" if bos_id is not None else " (this tokenizer has none)"),
        "tokenizer": type(tokenizer).__name__,
        "vocab_size": int(len(tokenizer)),
        "bos_token": getattr(tokenizer, "bos_token", None),
        "bos_token_id": bos_id,
        "tokenizer_adds_bos": bool(adds_bos),
        "bos_prepended": bool(prepend),
    }


def encode(tokenizer, text: str, choice: dict) -> list[int]:
    ids = list(tokenizer(text, add_special_tokens=False).input_ids)
    if choice["bos_prepended"]:
        ids = [choice["bos_token_id"]] + ids
    return ids


def token_strings(tokenizer, ids: list[int]) -> list[str]:
    return [tokenizer.decode([i]) for i in ids]


def find_token_position(strings: list[str], target: str) -> tuple[int, str]:
    """science.md 0.3: scan from the end; first pass exact (stripped, lower-case) match, fallback
    pass substring match. Returns (position, "exact" | "substring"); raises ValueError if absent."""
    t = target.strip().lower()
    for i in range(len(strings) - 1, -1, -1):
        if strings[i].strip().lower() == t:
            return i, "exact"
    for i in range(len(strings) - 1, -1, -1):
        if t in strings[i].lower():
            return i, "substring"
    raise ValueError(f"target {target!r} not found in {strings!r}")


@dataclass
class Encoded:
    text: str
    ids: list[int]
    position: int | None
    match: str | None  # "exact", "substring" or None (absent)


def encode_prompt(tokenizer, text: str, target: str, choice: dict) -> Encoded:
    ids = encode(tokenizer, text, choice)
    try:
        pos, how = find_token_position(token_strings(tokenizer, ids), target)
    except ValueError:
        return Encoded(text, ids, None, None)
    return Encoded(text, ids, pos, how)


def _target_problem(enc: Encoded, target: str, must_be_last: bool) -> str | None:
    if enc.match is None:
        return f"target {target!r} not found among the tokens of {enc.text!r}"
    if enc.match != "exact":
        return (f"target {target!r} is not a single token in {enc.text!r} (found only by the substring fallback)")
    if must_be_last and enc.position != len(enc.ids) - 1:
        return f"target {target!r} is not the last token of {enc.text!r} (position {enc.position} of {len(enc.ids)})"
    return None


def _ends_with(text: str, target: str) -> bool:
    parts = text.split()
    return bool(parts) and parts[-1] == target


@dataclass
class StimuliCheck:
    """What :func:`check_stimuli` found for one tokenizer."""

    tokenization: dict
    word_problems: dict[str, list[str]]
    control_problems: dict[str, list[str]]
    pair_problems: dict[int, list[str]]
    encoded: dict[str, Encoded]  # prompt text -> encoding, for the prompts of usable words
    dropped: dict[str, list[DroppedPrompt]] = field(default_factory=dict)  # per word, prompts left out of a set
    direction: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # per word, kept direction prompts
    graded: dict[str, list[Prompt]] = field(default_factory=dict)  # per word, kept graded prompts (level order)
    near_duplicates: dict[str, list[str]] = field(default_factory=dict)  # per word, kept graded near-duplicates

    def usable_words(self, stimuli: Stimuli) -> list[str]:
        return [w for w in stimuli.words if not self.word_problems.get(w)]

    def usable_controls(self, stimuli: Stimuli) -> list[str]:
        return [w for w in stimuli.controls if not self.control_problems.get(w)]

    def usable_pairs(self, stimuli: Stimuli) -> list[int]:
        return [i for i in range(len(stimuli.v1_pairs)) if not self.pair_problems.get(i)]

    def direction_prompts(self, word: str) -> list[Prompt]:
        """The direction prompts measured for ``word`` (sense A first)."""
        return [Prompt(t, word, "direction", s, None) for s in SENSES for t in self.direction[word][s]]

    def graded_prompts(self, word: str) -> list[Prompt]:
        """The graded (test) prompts measured for ``word``, in level order."""
        return list(self.graded[word])

    def graded_tokens(self, word: str) -> list[int]:
        """Token counts of ``word``'s measured graded prompts (of a usable word)."""
        return [len(self.encoded[p.text].ids) for p in self.graded[word]]

    def length_matched(self, word: str) -> bool:
        """Whether ``word``'s measured graded prompts share one token count (so one target position)."""
        return len(set(self.graded_tokens(word))) <= 1

    def to_json(self) -> dict:
        return {
            "tokenization": self.tokenization,
            "words_skipped": {w: p for w, p in self.word_problems.items() if p},
            "prompts_dropped": {w: [d.describe() for d in ds] for w, ds in self.dropped.items()
                                if ds and not self.word_problems.get(w)},
            "near_duplicates_kept": {w: ds for w, ds in self.near_duplicates.items()
                                     if ds and not self.word_problems.get(w)},
            "controls_skipped": {w: p for w, p in self.control_problems.items() if p},
            "v1_pairs_skipped": {str(i): p for i, p in self.pair_problems.items() if p},
        }


def check_stimuli(stimuli: Stimuli, tokenizer) -> StimuliCheck:
    """What ``stimuli`` give under ``tokenizer``: per word the problems that remove it (empty for a
    measured word), the prompts dropped from a set and the prompts kept (module docstring)."""
    choice = tokenization_choice(tokenizer)
    problems: dict[str, list[str]] = {}
    encoded: dict[str, Encoded] = {}
    dropped: dict[str, list[DroppedPrompt]] = {}
    kept_direction: dict[str, dict[str, list[str]]] = {}
    kept_graded: dict[str, list[Prompt]] = {}
    near: dict[str, list[str]] = {}
    for word, ws in stimuli.words.items():
        direction, graded, dropped[word] = split_prompts(ws)
        kept_direction[word], kept_graded[word] = direction, graded
        flagged = {(pair.graded, pair.level) for pair in overlapping_pairs(ws)}
        near[word] = [p.text for p in graded if (p.text, p.level) in flagged]
        found: list[str] = []
        for s in SENSES:
            if len(direction[s]) < 2:
                found.append(f"direction {s} has {len(direction[s])} prompt(s) left after the dropped ones; a "
                             "leave-one-out direction needs at least 2")
        levels = sorted({p.level for p in graded})
        if len(levels) < 2:
            found.append(f"graded prompts are left at {len(levels)} level(s) "
                         f"({', '.join(map(_level_name, levels)) or 'none'}) after the dropped ones; a level effect "
                         "needs at least 2")
        word_encoded: dict[str, Encoded] = {}
        for p in [Prompt(t, word, "direction", s, None) for s in SENSES for t in direction[s]] + graded:
            if not _ends_with(p.text, word):
                found.append(f"prompt {p.text!r} does not end with its target {word!r} (context only before the target, "
                             "no final punctuation)")
                continue
            enc = encode_prompt(tokenizer, p.text, word, choice)
            why = _target_problem(enc, word, must_be_last=True)
            if why:
                found.append(why)
                continue
            word_encoded[p.text] = enc
        if not found:
            encoded.update(word_encoded)
        problems[word] = found
    control_problems: dict[str, list[str]] = {}
    for word, texts in stimuli.controls.items():
        found = []
        for text in texts:
            if not _ends_with(text, word):
                found.append(f"control prompt {text!r} does not end with {word!r}")
                continue
            enc = encode_prompt(tokenizer, text, word, choice)
            why = _target_problem(enc, word, must_be_last=True)
            if why:
                found.append(why)
            else:
                encoded[text] = enc
        control_problems[word] = found
    pair_problems: dict[int, list[str]] = {}
    for i, pair in enumerate(stimuli.v1_pairs):
        word, short, after = pair["word"], pair["target_last"], pair["context_after"]
        long = short + " " + after
        found = []
        if not _ends_with(short, word):
            found.append(f"v1 pair {i}: {short!r} does not end with {word!r}")
        elif word.lower() in after.lower().split():
            found.append(f"v1 pair {i}: the context after the target repeats {word!r}")
        else:
            a = encode_prompt(tokenizer, short, word, choice)
            b = encode_prompt(tokenizer, long, word, choice)
            why = _target_problem(a, word, must_be_last=True) or _target_problem(b, word, must_be_last=False)
            if why:
                found.append(f"v1 pair {i}: {why}")
            elif a.position != b.position or b.ids[: a.position + 1] != a.ids[: a.position + 1]:
                found.append(f"v1 pair {i}: the tokens up to the target differ between {short!r} and {long!r}")
            else:
                encoded[short], encoded[long] = a, b
        pair_problems[i] = found
    return StimuliCheck(choice, problems, control_problems, pair_problems, encoded, dropped, kept_direction,
                        kept_graded, near)


def no_words_error(stimuli: Stimuli, check: StimuliCheck, model: str) -> NoMeasurableWords:
    """The one sentence a semantic experiment stops with when no word of ``stimuli`` can be measured."""
    first = next(((w, p[0]) for w, p in check.word_problems.items() if p), None)
    example = f" (the first problem, {first[0]}: {first[1]})" if first else ""
    path = "semphase/data/stimuli.json" if stimuli.source.startswith("packaged:") else stimuli.source
    return NoMeasurableWords(f"no word of the stimuli {stimuli.source!r} can be measured on {model}{example}; "
                             f"`python -m semphase stimuli check {path} --model {model}` lists every problem, one line "
                             "each: fix the file and run again.")
