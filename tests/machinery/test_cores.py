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
