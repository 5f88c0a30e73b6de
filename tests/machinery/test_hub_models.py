"""Hub models, tested offline on a Hugging Face cache built here (the hub itself cannot be reached): the weights
are identified by the hub's file hashes and the snapshot's commit, --revision picks a snapshot, and --dtype loads
the weights in another precision, recorded everywhere."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.machinery
ROOT = Path(__file__).resolve().parents[2]
REPO = "semphase-test/tiny-llama"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def hf_home(tiny_llama, tmp_path_factory):
    """A Hugging Face cache holding the tiny model as the hub would: blobs named by their sha256, a snapshot of
    symlinks under its commit, refs/main pointing at it."""
    home = tmp_path_factory.mktemp("hf-home")
    repo = home / "hub" / ("models--" + REPO.replace("/", "--"))
    (repo / "blobs").mkdir(parents=True)
    snap = repo / "snapshots" / COMMIT
    snap.mkdir(parents=True)
    for f in sorted(Path(tiny_llama).iterdir()):
        if f.is_file():
            digest = sha256_file(f)
            shutil.copy(f, repo / "blobs" / digest)
            os.symlink(f"../../blobs/{digest}", snap / f.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return home


def run(hf_home, tiny_text, out, *extra):
    env = dict(os.environ, HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.pop("HF_HUB_CACHE", None)
    return subprocess.run([sys.executable, "-m", "semphase", "run", "exp10", "--model", REPO, "--text-file",
                           str(tiny_text), "--parts", "a", "--tokens", "128", "--ctx", "64", "--layers", "0", "--quiet",
                           "--output-dir", str(out), *extra], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=600)


def provenance(out: Path) -> dict:
    return json.loads(next((out / "data").glob("exp10_*.json")).read_text())["evidence"]["provenance"]["model"]


def test_a_hub_model_is_identified_by_the_hubs_file_hashes(hf_home, tiny_llama, tiny_text, tmp_path):
    res = run(hf_home, tiny_text, tmp_path / "out")
    assert res.returncode == 0, res.stderr[-3000:]
    mp = provenance(tmp_path / "out")
    assert mp["source"] == "hub" and mp["revision"] == COMMIT
    assert mp["weights_identified_by"] == "hub file hashes"
    assert mp["weights_files"] == {"model.safetensors": sha256_file(Path(tiny_llama) / "model.safetensors")}
    assert mp["dtype"] == "float32"
    pinned = run(hf_home, tiny_text, tmp_path / "pinned", "--revision", COMMIT)
    assert pinned.returncode == 0, pinned.stderr[-3000:]
    assert provenance(tmp_path / "pinned")["weights_sha256"] == mp["weights_sha256"]


def test_a_revision_not_at_hand_and_a_revision_of_a_local_model_are_refused(hf_home, tiny_llama, tiny_text,
                                                                              tmp_path):
    res = run(hf_home, tiny_text, tmp_path / "out", "--revision", "f" * 40)
    assert res.returncode == 2 and "at revision " + "f" * 40 in res.stderr and "Traceback" not in res.stderr
    res = subprocess.run([sys.executable, "-m", "semphase", "run", "exp10", "--model", str(tiny_llama), "--revision",
                          "v1", "--text-file", str(tiny_text), "--parts", "a", "--tokens", "128", "--ctx", "64",
                          "--output-dir", str(tmp_path / "o2")], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert res.returncode == 2 and "--revision v1" in res.stderr and "not a hub model" in res.stderr


def test_bfloat16_is_loaded_and_recorded(tiny_llama, tiny_text, tmp_path):
    """--dtype bfloat16 loads the weights in bfloat16; the cache key, the provenance and the report header say so."""
    res = subprocess.run([sys.executable, "-m", "semphase", "run", "exp10", "--model", str(tiny_llama), "--dtype",
                          "bfloat16", "--text-file", str(tiny_text), "--budget", "smoke", "--tokens", "256", "--ctx",
                          "64", "--quiet", "--output-dir", str(tmp_path / "out")], capture_output=True, text=True,
                         cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert provenance(tmp_path / "out")["dtype"] == "bfloat16"
    keys = {json.loads(f.read_text())["key"]["dtype"] for f in (tmp_path / "out" / "cache").rglob("*.json")}
    assert keys == {"bfloat16"}
    assert "/ bfloat16," in (tmp_path / "out" / "reports" / "exp10_results.md").read_text()


def test_the_hub_probe_follows_huggingface_hubs_settings(monkeypatch):
    """The hub is looked for where huggingface_hub would look (HF_ENDPOINT, its offline mode), and behind a proxy
    the download itself is tried."""
    import socket

    from huggingface_hub import constants

    from semphase import models

    tried = []

    def fake_connect(address, timeout=None):
        tried.append(address)
        raise OSError("unreachable")

    monkeypatch.setattr(socket, "create_connection", fake_connect)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "https://hf-mirror.example:8443")
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    assert models._hub_reachable() is False and tried == [("hf-mirror.example", 8443)]
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert models._hub_reachable() is True
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert models._hub_reachable() is False
