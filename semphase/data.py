"""Evaluation text: WikiText-2 raw (hub or local copy) or any UTF-8 file, cut into chunks.

The protocol is science.md 0.5: all rows of the split joined with "\\n\\n", encoded once
without BOS or special tokens, truncated to the first ``tokens`` tokens, cut into
non-overlapping chunks of ``ctx`` tokens. A trailing partial chunk is dropped, except
when it is the only chunk (fewer than ``ctx`` tokens in all).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import DataUnavailable, SemphaseError

WIKITEXT_FILES = {"validation": "wiki.valid.raw", "test": "wiki.test.raw", "train": "wiki.train.raw"}
DATA_DIR_ENV = "SEMPHASE_DATA_DIR"


def file_lines_to_rows(raw: str) -> list[str]:
    """The ``datasets`` rows of a WikiText raw file: each line keeps its newline, and a
    blank line (whitespace only) is an empty row, as the hub's loading script yields them."""
    lines = raw.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the file ends with a newline: no row after it
    return [line + "\n" if line.strip() else "" for line in lines]


def rows_to_text(rows: list[str]) -> str:
    """Join dataset rows the way the original study did."""
    return "\n\n".join(rows)


def wikitext_rows(split: str = "validation", data_dir: str | os.PathLike | None = None) -> tuple[list[str], str]:
    """Rows of WikiText-2 raw ``split`` and a description of where they came from.

    ``data_dir`` (or ``$SEMPHASE_DATA_DIR``) names a folder holding
    ``wikitext-2-raw/wiki.{valid,test,train}.raw``; without one, the ``datasets`` hub loader
    is used.
    """
    if split not in WIKITEXT_FILES:
        raise SemphaseError(f"unknown WikiText split {split!r}; use one of {', '.join(WIKITEXT_FILES)}.")
    data_dir = data_dir or os.environ.get(DATA_DIR_ENV)
    if data_dir:
        path = Path(data_dir).expanduser() / "wikitext-2-raw" / WIKITEXT_FILES[split]
        if not path.is_file():
            raise DataUnavailable(
                f"the data folder {str(data_dir)!r} has no wikitext-2-raw/{WIKITEXT_FILES[split]}; "
                "point --data-dir (or SEMPHASE_DATA_DIR) at the folder that holds wikitext-2-raw/."
            )
        try:
            raw = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataUnavailable(f"could not read {path} ({exc}); check the file.") from None
        return file_lines_to_rows(raw), f"local:{path}"
    try:
        import datasets

        ds = datasets.load_dataset("wikitext", "wikitext-2-raw-v1", split=split)
    except Exception as exc:  # the hub loader raises many kinds of errors offline
        raise DataUnavailable(
            f"WikiText-2 ({split}) could not be loaded from the hub ({type(exc).__name__}); "
            f"pass --data-dir DIR (or set {DATA_DIR_ENV}) with a local wikitext-2-raw/ copy."
        ) from None
    return list(ds["text"]), "hub:wikitext/wikitext-2-raw-v1"


def read_text_file(path: str | os.PathLike) -> str:
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataUnavailable(f"--text-file {str(path)!r} does not exist; give the path of a UTF-8 text file.")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataUnavailable(
            f"--text-file {str(path)!r} is not UTF-8 (byte {exc.start} cannot be decoded); convert it to UTF-8."
        ) from None
    except OSError as exc:
        raise DataUnavailable(f"--text-file {str(path)!r} cannot be read ({exc.strerror}).") from None
    if not text.strip():
        raise DataUnavailable(f"--text-file {str(path)!r} is empty; give a file with some text.")
    return text


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class TokenSet:
    """Chunks of token ids [n_chunks, ctx] and what they were made from."""

    chunks: torch.Tensor
    meta: dict = field(default_factory=dict)

    @property
    def n_chunks(self) -> int:
        return int(self.chunks.shape[0])

    @property
    def ctx(self) -> int:
        return int(self.chunks.shape[1])

    @property
    def n_tokens(self) -> int:
        return int(self.chunks.numel())

    @property
    def n_predicted(self) -> int:
        return self.n_chunks * (self.ctx - 1)

    @property
    def fingerprint(self) -> str:
        """sha256 of the token ids themselves: the data part of every cache key."""
        return hashlib.sha256(self.chunks.to(torch.int64).contiguous().numpy().tobytes()).hexdigest()

    def subset(self, start: int, stop: int, name: str) -> "TokenSet":
        meta = dict(self.meta, subset=name, chunk_range=[start, stop])
        return TokenSet(self.chunks[start:stop], meta)

    def split_heldout(self) -> tuple["TokenSet", "TokenSet"]:
        """Disjoint halves: the first half of the chunks ranks heads and estimates means, the
        second half evaluates. Needs at least two chunks."""
        if self.n_chunks < 2:
            raise SemphaseError(
                f"held-out tests need at least 2 chunks, but {self.n_tokens} tokens at ctx {self.ctx} "
                "give 1; raise --tokens or lower --ctx."
            )
        half = self.n_chunks // 2
        return self.subset(0, half, "rank"), self.subset(half, self.n_chunks, "eval")

    def describe(self) -> dict:
        return dict(self.meta, n_chunks=self.n_chunks, ctx=self.ctx, n_tokens=self.n_tokens,
                    n_predicted=self.n_predicted, tokens_sha256=self.fingerprint)


def chunk_tokens(ids: list[int] | torch.Tensor, tokens: int, ctx: int) -> torch.Tensor:
    """First ``tokens`` ids cut into non-overlapping chunks of ``ctx`` (science.md 0.5)."""
    ids = torch.as_tensor(ids, dtype=torch.long)
    available = int(ids.numel())
    if ctx < 2:
        raise SemphaseError(f"--ctx {ctx}: a chunk needs at least 2 tokens (one to predict from).")
    if tokens <= 0:
        raise SemphaseError(f"--tokens {tokens}: give a positive number of tokens (e.g. 2048).")
    if tokens > available:
        raise SemphaseError(
            f"--tokens {tokens}: the data has only {available} tokens; use --tokens {available} or fewer."
        )
    ids = ids[:tokens]
    if tokens < ctx:
        if tokens < 2:
            raise SemphaseError(f"--tokens {tokens}: at least 2 tokens are needed to predict one.")
        return ids.unsqueeze(0)
    n_chunks = tokens // ctx
    return ids[: n_chunks * ctx].view(n_chunks, ctx)


_TOKEN_CACHE: dict[tuple, list[int]] = {}


def encode(tokenizer, text: str) -> list[int]:
    """Token ids without BOS or any special token, memoised per (tokenizer, text)."""
    key = (getattr(tokenizer, "name_or_path", id(tokenizer)), len(tokenizer), sha256_text(text))
    if key not in _TOKEN_CACHE:
        _TOKEN_CACHE[key] = list(tokenizer.encode(text, add_special_tokens=False))
    return _TOKEN_CACHE[key]


def _text(split: str, data_dir: str | None, text_file: str | None) -> tuple[str, str]:
    if text_file:
        return read_text_file(text_file), f"file:{Path(text_file).expanduser().resolve()}"
    rows, source = wikitext_rows(split, data_dir)
    return rows_to_text(rows), source + f" (wikitext-2-raw-v1 {split})"


def load_eval_tokens(tokenizer, tokens: int | None, ctx: int = 1024, split: str = "validation",
                     data_dir: str | None = None, text_file: str | None = None, start: int = 0) -> TokenSet:
    """Evaluation tokens as a :class:`TokenSet`: the token range [start, start + tokens) of the
    split (or text file), cut into chunks of ``ctx``. ``tokens=None`` means everything from
    ``start`` on. Two ranges that do not overlap share no token (held-out data)."""
    text, source = _text(split, data_dir, text_file)
    ids = encode(tokenizer, text)
    if start < 0 or start >= len(ids):
        raise SemphaseError(f"token range starting at {start}: the data has {len(ids)} tokens; start within them.")
    avail = ids[start:]
    if tokens is None:
        tokens = len(avail)
    chunks = chunk_tokens(avail, tokens, ctx)
    meta = {"source": source, "text_sha256": sha256_text(text), "tokens_available": len(ids),
            "tokens_requested": tokens, "token_range": [start, start + int(chunks.numel())]}
    return TokenSet(chunks, meta)
