"""Evaluation text: WikiText-2 raw (a local copy or the hub) or any UTF-8 file, cut into chunks.

The protocol is science.md 0.5: all rows of the split joined with "\\n\\n", encoded once
without BOS or special tokens, truncated to the first ``tokens`` tokens, cut into
non-overlapping chunks of ``ctx`` tokens. A trailing partial chunk is dropped, except
when it is the only chunk (fewer than ``ctx`` tokens in all).

Which copy of WikiText-2 a run reads (:func:`locate_wikitext`), first match wins:

1. ``--data-dir DIR`` (a folder holding ``wikitext-2-raw/wiki.{valid,test,train}.raw``);
2. ``$SEMPHASE_DATA_DIR`` (the same layout);
3. the local store, ``$SEMPHASE_CACHE`` or ``~/.cache/semphase`` (the same layout, written by
   ``python -m semphase data fetch`` with a ``SHA256SUMS`` file beside the split files), when it
   holds the split;
4. the ``datasets`` hub loader.

Every local copy is read by one function (:func:`read_wikitext`); a ``SHA256SUMS`` beside the
files, where there is one, is checked on every read. The copy used is recorded in the evidence
(``data.source`` and ``data.copy``: how it was chosen, its path and its file's sha256).
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


STORE_ENV = "SEMPHASE_CACHE"
DEFAULT_STORE = "~/.cache/semphase"
WIKITEXT_FOLDER = "wikitext-2-raw"
CHECKSUMS = "SHA256SUMS"
FETCH_SPLITS = ("validation", "test")
HUB_NAME = "wikitext/wikitext-2-raw-v1"


def store_dir(store: str | os.PathLike | None = None) -> Path:
    """The local store: ``store``, else ``$SEMPHASE_CACHE``, else ``~/.cache/semphase``."""
    return Path(store or os.environ.get(STORE_ENV) or DEFAULT_STORE).expanduser()


def _check_split(split: str) -> None:
    if split not in WIKITEXT_FILES:
        raise SemphaseError(f"unknown WikiText split {split!r}; use one of {', '.join(WIKITEXT_FILES)}.")


def read_checksums(folder: Path) -> dict[str, str]:
    """``{file name: sha256}`` from ``folder/SHA256SUMS`` (``sha256sum`` format); {} without one."""
    path = folder / CHECKSUMS
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.strip().partition("  ")
        if digest and name:
            out[name.lstrip("*")] = digest.lower()
    return out


@dataclass(frozen=True)
class DataCopy:
    """One copy of a WikiText-2 split: how the lookup chose it, where it is, its file's sha256."""

    split: str
    chosen_by: str  # "--data-dir", "$SEMPHASE_DATA_DIR", "local store" or "hub"
    path: Path | None = None  # the split's file (None for the hub)
    sha256: str | None = None  # of the file's bytes, when read
    checksum: str = ""  # what SHA256SUMS said, in words

    @property
    def portable_path(self) -> str | None:
        """The file inside its data folder (``wikitext-2-raw/wiki.valid.raw``): results name the copy by
        this, how it was chosen and its sha256, never by a machine's absolute path."""
        return None if self.path is None else f"{Path(self.path).parent.name}/{Path(self.path).name}"

    @property
    def source(self) -> str:
        if self.path is None:
            return f"hub:{HUB_NAME}"
        return f"{'store' if self.chosen_by == 'local store' else 'local'}:{self.portable_path}"

    def to_json(self) -> dict:
        return {"split": self.split, "chosen_by": self.chosen_by, "path": self.portable_path,
                "file_sha256": self.sha256, "checksum": self.checksum or None}

    def describe(self) -> str:
        """One line for ``semphase data where``."""
        if self.path is None:
            return (f"{self.split}: the datasets hub ({HUB_NAME}), read when a run needs it: no --data-dir, "
                    f"${DATA_DIR_ENV} unset, no copy in the local store {store_dir()}")
        return (f"{self.split}: {self.path} ({self.chosen_by}; sha256 {self.sha256[:16] if self.sha256 else 'n/a'}, "
                f"{self.checksum})")


def locate_wikitext(split: str = "validation", data_dir: str | os.PathLike | None = None,
                    store: str | os.PathLike | None = None) -> DataCopy:
    """The copy of ``split`` a run reads (the lookup order of the module docstring), not yet read."""
    _check_split(split)
    name = WIKITEXT_FILES[split]
    if data_dir:
        folder, chosen_by, fix = Path(data_dir), "--data-dir", "point --data-dir at the folder that holds wikitext-2-raw/"
    elif os.environ.get(DATA_DIR_ENV):
        folder, chosen_by, fix = (Path(os.environ[DATA_DIR_ENV]), f"${DATA_DIR_ENV}",
                                  f"point {DATA_DIR_ENV} at the folder that holds wikitext-2-raw/ (or unset it)")
    else:
        path = store_dir(store) / WIKITEXT_FOLDER / name
        if path.is_file():
            return DataCopy(split, "local store", path.resolve())
        return DataCopy(split, "hub")
    path = folder.expanduser() / WIKITEXT_FOLDER / name
    if not path.is_file():
        raise DataUnavailable(f"the data folder {str(folder)!r} ({chosen_by}) has no {WIKITEXT_FOLDER}/{name}; {fix}.")
    return DataCopy(split, chosen_by, path.resolve())


def read_local(copy: DataCopy) -> tuple[str, DataCopy]:
    """The text of a local copy, checked against the ``SHA256SUMS`` beside it when it lists the file."""
    path = copy.path
    try:
        raw = path.read_bytes()
        expected = read_checksums(path.parent).get(path.name)
    except OSError as exc:
        raise DataUnavailable(f"could not read {path} ({exc.strerror or exc}); check the file.") from None
    digest = hashlib.sha256(raw).hexdigest()
    if expected and expected != digest:
        raise DataUnavailable(
            f"{path} does not match its sha256 in {CHECKSUMS} (file {digest[:16]}, listed {expected[:16]}); "
            "fetch it again with `python -m semphase data fetch` or restore the file.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataUnavailable(f"could not read {path} (not UTF-8 at byte {exc.start}); check the file.") from None
    checksum = f"matches {CHECKSUMS}" if expected else f"no {CHECKSUMS} beside it"
    return text, DataCopy(copy.split, copy.chosen_by, path, digest, checksum)


def hub_rows(split: str) -> list[str]:
    """The rows of ``split`` from the ``datasets`` hub loader."""
    try:
        import datasets
    except ImportError:
        raise DataUnavailable(
            f"WikiText-2 ({split}) is not at hand and the hub loader needs the datasets package, which is not "
            f"installed: pip install 'semphase[data]', or pass --data-dir DIR (or set {DATA_DIR_ENV}) with a local "
            "wikitext-2-raw/ copy."
        ) from None
    try:
        ds = datasets.load_dataset("wikitext", "wikitext-2-raw-v1", split=split)
    except Exception as exc:  # the hub loader raises many kinds of errors offline
        raise DataUnavailable(
            f"WikiText-2 ({split}) could not be loaded from the hub ({type(exc).__name__}); "
            f"pass --data-dir DIR (or set {DATA_DIR_ENV}) with a local wikitext-2-raw/ copy."
        ) from None
    return list(ds["text"])


def read_wikitext(split: str = "validation", data_dir: str | os.PathLike | None = None,
                  store: str | os.PathLike | None = None) -> tuple[list[str], DataCopy]:
    """Rows of WikiText-2 raw ``split`` and the copy they came from (one code path for every
    local copy: ``--data-dir``, ``$SEMPHASE_DATA_DIR`` and the local store share the layout)."""
    copy = locate_wikitext(split, data_dir, store)
    if copy.path is None:
        return hub_rows(split), copy
    text, copy = read_local(copy)
    return file_lines_to_rows(text), copy


def wikitext_rows(split: str = "validation", data_dir: str | os.PathLike | None = None) -> tuple[list[str], str]:
    """Rows of WikiText-2 raw ``split`` and a description of where they came from
    (:func:`read_wikitext`, whose lookup order the module docstring gives)."""
    rows, copy = read_wikitext(split, data_dir)
    return rows, copy.source


# -- the local store ---------------------------------------------------------------------------

def rows_to_file(rows: list[str]) -> str:
    """The raw file of a split's rows, as the original files and ``../shared/data`` hold them: one
    line per row, an empty row as a line holding one space. :func:`file_lines_to_rows` inverts it."""
    return "".join(row if row else " \n" for row in rows)


def _check_writable(folder: Path) -> None:
    """Fail before any download when ``folder`` cannot be created or written."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise SemphaseError(f"the store folder {str(folder.parent)!r} cannot be written ({str(probe)!r} is "
                            f"{'not a folder' if not probe.is_dir() else 'read-only'}); give another with --store DIR.")


def fetch_wikitext(store: str | os.PathLike | None = None, splits: tuple[str, ...] = FETCH_SPLITS,
                   loader=None) -> list[DataCopy]:
    """Store WikiText-2 raw ``splits`` from the hub in ``store`` (:func:`store_dir`), in the
    ``../shared/data`` layout, with a ``SHA256SUMS`` file beside them.

    Every split is loaded and checked (its file must give back the hub's rows exactly) before
    anything is written, and each file is replaced atomically: a failure leaves the store as it
    was. ``loader(split) -> rows`` replaces the hub loader (tests)."""
    from .cache import atomic_write_bytes, atomic_write_text

    for split in splits:
        _check_split(split)
    folder = store_dir(store) / WIKITEXT_FOLDER
    _check_writable(folder)
    if loader is None:
        from .models import _hub_reachable

        if not _hub_reachable():
            raise DataUnavailable(
                "the datasets hub cannot be reached from here, so WikiText-2 cannot be fetched; run "
                "`python -m semphase data fetch` on a connected machine and copy its folder here, or pass "
                "--data-dir DIR with a local wikitext-2-raw/ copy.")
        loader = hub_rows
    files = {}
    for split in splits:
        rows = list(loader(split))
        text = rows_to_file(rows)
        if file_lines_to_rows(text) != rows:
            raise DataUnavailable(f"the hub's {split} rows cannot be stored as a raw file without a loss (a row that "
                                  "is blank but not empty, or holds a line break); nothing was written.")
        files[WIKITEXT_FILES[split]] = text.encode("utf-8")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        def write_sums(sums: dict) -> None:
            atomic_write_text(folder / CHECKSUMS, "".join(f"{d}  {n}\n" for n, d in sorted(sums.items())))

        # The old sums of the files about to be replaced go first: an interrupted fetch leaves
        # files without a sum (read unchecked), never a file with a wrong one.
        sums = {n: d for n, d in read_checksums(folder).items() if n not in files}
        write_sums(sums)
        for name, data in files.items():
            atomic_write_bytes(folder / name, data)
            sums[name] = hashlib.sha256(data).hexdigest()
        write_sums(sums)
    except OSError as exc:
        raise SemphaseError(f"the store {str(folder)!r} cannot be written ({exc.strerror or exc}); give another "
                            "with --store DIR.") from None
    return [read_local(DataCopy(split, "local store", (folder / WIKITEXT_FILES[split]).resolve()))[1]
            for split in splits]


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


def _text(split: str, data_dir: str | None, text_file: str | None) -> tuple[str, str, dict | None]:
    if text_file:
        return read_text_file(text_file), f"file:{Path(text_file).name}", None  # the text's sha256 names it too
    rows, copy = read_wikitext(split, data_dir)
    return rows_to_text(rows), f"{copy.source} (wikitext-2-raw-v1 {split}, {copy.chosen_by})", copy.to_json()


def load_eval_tokens(tokenizer, tokens: int | None, ctx: int = 1024, split: str = "validation",
                     data_dir: str | None = None, text_file: str | None = None, start: int = 0) -> TokenSet:
    """Evaluation tokens as a :class:`TokenSet`: the token range [start, start + tokens) of the
    split (or text file), cut into chunks of ``ctx``. ``tokens=None`` means everything from
    ``start`` on. Two ranges that do not overlap share no token (held-out data)."""
    text, source, copy = _text(split, data_dir, text_file)
    ids = encode(tokenizer, text)
    if start < 0 or start >= len(ids):
        raise SemphaseError(f"token range starting at {start}: the data has {len(ids)} tokens; start within them.")
    avail = ids[start:]
    if tokens is None:
        tokens = len(avail)
    chunks = chunk_tokens(avail, tokens, ctx)
    meta = {"source": source, "text_sha256": sha256_text(text), "tokens_available": len(ids),
            "tokens_requested": tokens, "token_range": [start, start + int(chunks.numel())]}
    if copy is not None:
        meta["copy"] = copy
    return TokenSet(chunks, meta)
