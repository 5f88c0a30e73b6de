"""Concurrent semphase processes on one machine share its cores: each takes the cores divided by the processes
registered, and the one left takes them all back; a process that died counts no more."""
import os
import subprocess
import sys
import time

import pytest
import torch

from semphase.cores import CoreShare, machine_cores

pytestmark = pytest.mark.machinery

HOLDER = ("import sys, time; from semphase.cores import CoreShare; s = CoreShare(sys.argv[1]); s.join(); "
          "print('joined', flush=True); time.sleep(120)")


@pytest.mark.skipif(bool(os.environ.get("OMP_NUM_THREADS")), reason="OMP_NUM_THREADS fixes the thread count")
def test_two_processes_take_half_the_cores_each_and_the_survivor_takes_them_back(tmp_path):
    me = CoreShare(tmp_path)
    before = torch.get_num_threads()
    other = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "joined"
        me.join()
        assert me.active() == 2
        assert me.rebalance(force=True) == max(1, machine_cores() // 2) == torch.get_num_threads()
        other.kill()
        other.wait()
        deadline = time.time() + 10
        while me.active() != 1 and time.time() < deadline:  # its lock went with it
            time.sleep(0.05)
        assert me.rebalance(force=True) == machine_cores() == torch.get_num_threads()
    finally:
        other.kill()
        me.leave()
        torch.set_num_threads(before)
    assert not list(tmp_path.glob(f"{os.getpid()}.lock"))  # leaving removes this process's file


def test_a_process_outside_the_registry_changes_nothing(tmp_path):
    share = CoreShare(tmp_path)
    assert share.rebalance(force=True) is None  # not joined: torch's threads are left alone


def test_a_process_waiting_for_a_cache_entry_gives_its_cores_to_the_one_measuring(tmp_path, monkeypatch):
    """While this process waits for a cache entry's lock held by another process, it is out of the core registry
    (the one measuring takes its share), and it is back in when it holds the lock."""
    import threading

    from semphase import cores
    from semphase.cache import CacheEntry

    share = CoreShare(tmp_path / "registry")
    monkeypatch.setattr(cores, "SHARE", share)
    share.passive = True  # counted, but torch's threads left alone in this test
    share.join()
    entry = CacheEntry(tmp_path / "cache", "sweep", {"x": 1})
    entry.lock()  # creates the folder the lock file lives in
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from filelock import FileLock; "
                               "l = FileLock(sys.argv[1]); l.acquire(); print('held', flush=True); time.sleep(60)",
                               str(entry.dir) + ".lock"], stdout=subprocess.PIPE, text=True)
    got = threading.Event()
    try:
        assert holder.stdout.readline().strip() == "held"
        assert share.joined

        def wait_for_it():
            with entry.lock():
                got.set()
                time.sleep(0.5)

        t = threading.Thread(target=wait_for_it)
        t.start()
        deadline = time.time() + 10
        while share.joined and time.time() < deadline:
            time.sleep(0.05)
        assert not share.joined and not got.is_set()  # waiting: out of the registry
        holder.kill()
        holder.wait()
        assert got.wait(10)
        assert share.joined  # holding the lock: back in, with its share
        t.join()
    finally:
        holder.kill()
        share.leave()
