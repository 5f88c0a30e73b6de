"""The cores of one machine shared among the semphase processes running on it.

Each measuring process (a ``run``, a pytest process or xdist worker) joins a registry: a folder of lock files,
one per process, each held for the process's lifetime (the lock goes with a process that dies, so a crashed run
counts no more). While it measures, a process sets torch's intra-op threads to its share of the cores, the
cores it may use divided by the processes holding a lock, and looks again every few seconds: two runs started
side by side on two cores take one thread each instead of two, and the one left takes both when the other ends.
Without this, two runs with two threads each on two cores ran about seven times slower than one (issue 27).

``OMP_NUM_THREADS`` set by the user fixes the thread count: then nothing is changed.
``SEMPHASE_CORES_DIR`` names the registry (default: a folder in the temporary directory, per user).
"""
from __future__ import annotations

import atexit
import contextlib
import os
import tempfile
import time
from pathlib import Path

from filelock import FileLock

from .cache import held_if_free

RECHECK_SECONDS = 2.0


def machine_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_dir() -> Path:
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(os.environ.get("SEMPHASE_CORES_DIR") or Path(tempfile.gettempdir()) / f"semphase-cores-{uid}")


class CoreShare:
    """This process's place in a registry of processes sharing the machine's cores."""

    def __init__(self, folder: str | os.PathLike | None = None):
        self.folder = Path(folder) if folder else default_dir()
        self.lock: FileLock | None = None
        self.path: Path | None = None
        self._last = 0.0
        self.passive = False  # registered (others count it) but keeping its own thread count (xdist workers)

    @property
    def joined(self) -> bool:
        return self.lock is not None

    def join(self) -> None:
        """Hold this process's lock file (once); its share is applied at the next :meth:`rebalance`."""
        if self.joined:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"{os.getpid()}.lock"
            lock = FileLock(str(path))
            lock.acquire(timeout=0)
        except (OSError, TimeoutError):  # a registry we cannot use: keep torch's threads as they are
            return
        self.lock, self.path = lock, path

    def leave(self) -> None:
        """Give this process's share back (its lock file is removed; the others take the cores at their next
        look)."""
        if not self.joined:
            return
        try:
            self.lock.release()
            self.path.unlink()
        except OSError:
            pass
        self.lock = self.path = None

    def active(self) -> int:
        """Processes holding a lock in the registry (this one included). Files of processes that have ended are
        not counted (their locks can be taken); they are left in place, since a process that has just created its
        file may not hold its lock yet."""
        n = 0
        try:
            files = list(self.folder.glob("*.lock"))
        except OSError:
            return 1
        for f in files:
            if self.path is not None and f == self.path:
                n += 1
                continue
            try:
                with held_if_free(FileLock(str(f))) as free:
                    n += 0 if free else 1  # held by a live process
            except OSError:
                continue
        return max(1, n)

    def share(self) -> int:
        return max(1, machine_cores() // self.active())

    def rebalance(self, force: bool = False) -> int | None:
        """Set torch's threads to this process's share (at most every few seconds unless ``force``); returns the
        thread count set, or None when nothing was looked at."""
        if not self.joined or self.passive or fixed_by_user():
            return None
        now = time.monotonic()
        if not force and now - self._last < RECHECK_SECONDS:
            return None
        self._last = now
        import torch

        threads = self.share()
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        return threads


def fixed_by_user() -> bool:
    return bool(os.environ.get("OMP_NUM_THREADS"))


SHARE = CoreShare()  # this process's registration (joined by `run` and by the pytest plugin's measuring processes)


def join(apply: bool = True, passive: bool = False) -> None:
    """Join the registry (once per process) and, with ``apply``, take this process's share now; ``passive``: be
    counted by the others but keep this process's own thread count."""
    SHARE.passive = passive
    if not SHARE.joined:
        SHARE.join()
        if SHARE.joined:
            atexit.register(SHARE.leave)
    if apply:
        SHARE.rebalance(force=True)


@contextlib.contextmanager
def waiting():
    """While this process waits for another's work (a cache entry's lock), it is out of the registry, so the
    processes at work take its share; it joins again, with its share, when the wait ends."""
    was = SHARE.joined
    if was:
        SHARE.leave()
    try:
        yield
    finally:
        if was:
            SHARE.join()
            SHARE.rebalance(force=True)


def rebalance() -> None:
    """Called between units of work: cheap (a look at the registry every few seconds at most)."""
    SHARE.rebalance()


def leave() -> None:
    SHARE.leave()
