"""An evidence cache that cannot lie.

Each measurement is an *entry*, named by the sha256 of its key (model, weights hash,
processing, data fingerprint, tokens, ctx, ablation kind, measurement version, ...). An
entry is a folder of *units* (one layer of one chunk, one chunk of a curve): a sweep
checkpoints each finished unit, so an interrupted run resumes where it stopped.

Every unit file carries its key and a sha256 of its content and is written atomically
(temporary file, fsync, rename). A unit that is truncated, altered or written under another
key is reported in one line, deleted and recomputed. Workers that need the same entry take
its lock, so a measurement is computed once and never read half-written.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from filelock import FileLock

log = logging.getLogger("semphase.cache")
FORMAT = 1


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def key_hash(key: dict) -> str:
    return hashlib.sha256(canonical(key).encode()).hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be read by others
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


class CacheEntry:
    """One keyed measurement: a folder of checksummed unit files."""

    def __init__(self, root: Path, kind: str, key: dict, stats: dict | None = None):
        self.kind = kind
        # Normalised through JSON (tuples become lists) so that a key read back compares equal.
        self.key = json.loads(canonical(dict(key, kind=kind)))
        self.key_sha256 = key_hash(self.key)
        self.dir = Path(root) / kind / self.key_sha256[:24]
        self.stats = stats if stats is not None else new_stats()

    def lock(self, timeout: float = -1) -> "EntryLock":
        """The entry's lock: whoever holds it measures the entry's units; another process waits for it and then
        reads them back. While it waits, that process gives its share of the cores to the one measuring."""
        self.dir.parent.mkdir(parents=True, exist_ok=True)
        return EntryLock(str(self.dir) + ".lock", timeout=timeout)

    def unit_lock(self, unit: str) -> FileLock:
        """The lock of one unit, for processes that share an entry's units (cluster tasks): whoever holds it
        computes the unit; the lock goes with a process that dies."""
        path = self.dir / ".locks" / (self._path(unit).stem + ".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(path))

    def _path(self, unit: str) -> Path:
        safe = "".join(c if (c.isalnum() or c in "-_.") else "_" for c in unit)
        return self.dir / f"{safe}.json"

    @staticmethod
    def _digest(key_sha: str, unit: str, data: Any) -> str:
        return hashlib.sha256(canonical([key_sha, unit, data]).encode()).hexdigest()

    def has(self, unit: str) -> bool:
        """Whether the unit's file is there (not checked: :meth:`get` checks it when it reads it)."""
        return self._path(unit).exists()

    def get(self, unit: str) -> Any | None:
        """The unit's data, or None when absent. A damaged or foreign unit is reported,
        deleted and treated as absent."""
        path = self._path(unit)
        if not path.exists():
            return None
        problem = None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if record.get("format") != FORMAT or record.get("unit") != unit:
                problem = "has another format or unit name"
            elif record.get("key_sha256") != self.key_sha256 or record.get("key") != self.key:
                problem = "was written under another key (model, data, options or code version)"
            elif record.get("sha256") != self._digest(self.key_sha256, unit, record.get("data")):
                problem = "fails its checksum (altered or truncated)"
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            problem = "is not readable JSON (truncated or altered)"
        if problem:
            self.stats["corrupt"] += 1
            log.warning("semphase cache: %s %s; deleted, it will be recomputed.", path, problem)
            try:
                path.unlink()
            except OSError:
                pass
            return None
        count_hit(self.stats, record.get("seconds"))
        return record["data"]

    def put(self, unit: str, data: Any, seconds: float | None = None) -> None:
        """Store ``data`` as ``unit``; ``seconds``: the time its computation took (kept beside the
        checksummed data, so that a resumed run can say what the whole measurement cost)."""
        record = {
            "format": FORMAT,
            "key": self.key,
            "key_sha256": self.key_sha256,
            "unit": unit,
            "data": data,
            "sha256": self._digest(self.key_sha256, unit, data),
        }
        if seconds is not None:
            record["seconds"] = round(float(seconds), 3)
        atomic_write_text(self._path(unit), json.dumps(record, allow_nan=True))
        count_computed(self.stats, seconds)

    def get_or_compute(self, unit: str, compute: Callable[[], Any]) -> Any:
        data = self.get(unit)
        if data is None:
            start = time.perf_counter()
            data = compute()
            self.put(unit, data, seconds=time.perf_counter() - start)
        return data


def new_stats() -> dict:
    """Counts of one store: units read (``hits``), computed, found damaged; the seconds the
    computed units took in this process, and the seconds the read ones took when they were
    computed (``hit_seconds``, over the ``hits_timed`` units whose records carry their time: units
    written before the cache kept times carry none)."""
    return {"hits": 0, "computed": 0, "corrupt": 0, "computed_seconds": 0.0, "hit_seconds": 0.0, "hits_timed": 0}


def count_hit(stats: dict, seconds) -> None:
    stats["hits"] += 1
    if isinstance(seconds, (int, float)):
        stats["hit_seconds"] += float(seconds)
        stats["hits_timed"] += 1


def count_computed(stats: dict, seconds) -> None:
    stats["computed"] += 1
    if isinstance(seconds, (int, float)):
        stats["computed_seconds"] += float(seconds)


class EvidenceStore:
    """The cache root. ``None`` as root makes a store that keeps nothing on disk."""

    def __init__(self, root: str | os.PathLike | None):
        self.root = Path(root) if root else None
        self.stats = new_stats()
        # A cluster task's share of every sweep (semphase.cluster.Shard); None: this process computes every unit
        # it needs, holding each entry's lock while it does.
        self.shard = None
        self._memory: dict[str, _MemoryEntry] = {}

    def entry(self, kind: str, key: dict):
        if self.root is None:
            entry = _MemoryEntry(kind, key, self.stats)
            return self._memory.setdefault(entry.key_sha256, entry)
        return CacheEntry(self.root, kind, key, self.stats)


@contextlib.contextmanager
def held_if_free(lock):
    """Take ``lock`` when no one holds it, without waiting: yields True while held (released on exit), False
    when another holds it (a filelock ``Timeout`` is a ``TimeoutError``)."""
    try:
        lock.acquire(timeout=0)
    except TimeoutError:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


class EntryLock:
    """A file lock that, when it has to wait for another process, takes this process out of the core registry
    (:mod:`semphase.cores`) until it holds the lock: a run waiting for another run's measurement uses no core, so
    the one measuring gets them all (issue 27: two concurrent runs within about 1.3x of one)."""

    def __init__(self, path: str, timeout: float = -1):
        self._lock = FileLock(path, timeout=timeout)
        self.timeout = timeout

    def __enter__(self):
        from . import cores

        try:
            self._lock.acquire(timeout=0)
        except TimeoutError:  # filelock's Timeout
            with cores.waiting():
                self._lock.acquire(timeout=self.timeout)
        return self

    def __exit__(self, *exc):
        self._lock.release()
        return False


class _NullLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _MemoryEntry:
    """Same interface as :class:`CacheEntry`, in memory only (for ``--no-cache``)."""

    def __init__(self, kind: str, key: dict, stats: dict):
        self.kind = kind
        self.key = dict(key, kind=kind)
        self.key_sha256 = key_hash(self.key)
        self.stats = stats
        self.units: dict[str, Any] = {}

    def lock(self, timeout: float = -1):
        return _NullLock()

    def has(self, unit: str) -> bool:
        return unit in self.units

    def get(self, unit: str):
        if unit in self.units:
            count_hit(self.stats, None)
        return self.units.get(unit)

    def put(self, unit: str, data: Any, seconds: float | None = None) -> None:
        self.units[unit] = json.loads(canonical(data))
        count_computed(self.stats, seconds)

    get_or_compute = CacheEntry.get_or_compute


def summarize(root: str | os.PathLike) -> list[dict]:
    """What a cache folder holds, per measurement kind, model, device and number of chunks: the units and the
    seconds they took when computed (units written without their time are counted apart). Read from the unit files'
    records; nothing is checked or deleted."""
    groups: dict[tuple, dict] = {}
    for path in sorted(Path(root).rglob("*.json")):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            key = record["key"]
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
            continue
        kind = key.get("kind", path.relative_to(root).parts[0])
        group = (kind, str(key.get("model", "?")), str(key.get("device_type", key.get("device", "?"))),
                 key.get("n_chunks"), key.get("ctx"))
        row = groups.setdefault(group, {"kind": group[0], "model": group[1], "device": group[2], "chunks": group[3],
                                        "ctx": group[4], "units": 0, "seconds": 0.0, "untimed": 0})
        row["units"] += 1
        if isinstance(record.get("seconds"), (int, float)):
            row["seconds"] += float(record["seconds"])
        else:
            row["untimed"] += 1
    return sorted(groups.values(), key=lambda r: (r["model"], -r["seconds"], r["kind"]))
