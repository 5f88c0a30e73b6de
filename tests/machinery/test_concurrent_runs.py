"""Two runs of one experiment started together on one output folder: the first to take a measurement's lock
measures it, the other waits (out of the core registry, so the one measuring keeps the cores) and reads the units
back. Together they finish within 1.3x of one run alone, compute each unit once, and write the data one run
writes."""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from semphase.cluster import measured

pytestmark = pytest.mark.machinery
ROOT = Path(__file__).resolve().parents[2]
COMPUTED = re.compile(r"^exp10: (\d+) cache unit\(s\) computed, (\d+) read back", re.M)
WALL = re.compile(r"^(?:baseline PPL [0-9.]+; )?wall ([0-9.]+) s$", re.M)  # the run's own wall time (no startup)


@pytest.fixture(scope="module")
def small_llama(tmp_path_factory) -> Path:
    """A random Llama big enough that a sweep costs seconds of compute (d_model 256, 4 layers of 8 heads)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from conftest import make_tokenizer

    folder = tmp_path_factory.mktemp("small-llama")
    tok = make_tokenizer(folder)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=256, intermediate_size=512, num_hidden_layers=4,
                      num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=256,
                      bos_token_id=1, eos_token_id=1, tie_word_embeddings=False)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    return folder


def start(model: Path, text: Path, out: Path, registry: Path) -> tuple[subprocess.Popen, float]:
    env = dict(os.environ, SEMPHASE_CORES_DIR=str(registry))  # (the test skips where OMP_NUM_THREADS is set)
    cmd = [sys.executable, "-m", "semphase", "run", "exp10", "--parts", "a", "--tokens", "2048", "--ctx", "256",
           "--model", str(model), "--text-file", str(text), "--output-dir", str(out), "--quiet"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True), time.perf_counter()


def finish(proc: subprocess.Popen, t0: float) -> tuple[float, float, int]:
    """The process's wall time (interpreter and model loading included), the run's own wall time (as it records
    it in the provenance), and the cache units it computed."""
    out, err = proc.communicate(timeout=600)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, err[-3000:]
    m, w = COMPUTED.search(err), WALL.search(err)
    assert m and w, err[-2000:]
    return seconds, float(w.group(1)), int(m.group(1))


def data(out: Path) -> dict:
    return {p.name: measured(json.loads(p.read_text())) for p in sorted((out / "data").glob("*.json"))}


@pytest.mark.skipif(bool(os.environ.get("OMP_NUM_THREADS")), reason="OMP_NUM_THREADS fixes the thread count")
def test_two_concurrent_runs_finish_within_1_3x_of_one(small_llama, tiny_text, tmp_path):
    """Two concurrent runs of exp10's sweep on one output folder each take at most 1.3x the run alone's wall time
    (the runs' own, without interpreter start-up), compute each cache unit once between them, and write the data
    of the run alone."""
    registry = tmp_path / "cores"
    p_alone, alone, n_alone = finish(*start(small_llama, tiny_text, tmp_path / "alone", registry))
    assert n_alone > 0
    a, b = start(small_llama, tiny_text, tmp_path / "both", registry), start(small_llama, tiny_text,
                                                                              tmp_path / "both", registry)
    (pa, wa, na), (pb, wb, nb) = finish(*a), finish(*b)
    ratio = max(wa, wb) / alone
    print(f"run alone {alone:.1f} s ({p_alone:.1f} s with start-up); together {wa:.1f} s and {wb:.1f} s ({pa:.1f} "
          f"and {pb:.1f} s with start-up): ratio {ratio:.2f} (bound 1.3), {max(pa, pb) / p_alone:.2f} with start-up; "
          f"units computed {na} + {nb} against {n_alone} alone")
    assert na + nb == n_alone  # no unit computed twice, none missing
    assert data(tmp_path / "both") == data(tmp_path / "alone")
    assert ratio <= 1.3
