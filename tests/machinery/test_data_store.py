"""WikiText-2 at hand offline: ``semphase data fetch`` (with a fake hub loader: no network),
``semphase data where``, the lookup order (--data-dir, $SEMPHASE_DATA_DIR, the local store, the
hub), checksums, one code path for every local copy, and the copy named in the provenance."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from semphase import data
from semphase.cli import main
from semphase.data import (CHECKSUMS, DataCopy, fetch_wikitext, file_lines_to_rows, load_eval_tokens, locate_wikitext,
                           read_checksums, read_wikitext, rows_to_file)
from semphase.errors import DataUnavailable, SemphaseError

pytestmark = pytest.mark.machinery
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
SHARED_VALID_SHA256 = "4cd0f6876d07a413aa911261ff6d363c72d757d47f0fdd6015702014c89cb9c7"  # ../shared/data/README.md

FAKE = {
    "validation": ["", " = Valid = \n", "", " The bank of the river was steep . \n", ""],
    "test": ["", " = Test = \n", "", " She went to the bank . \n", " He swung the bat . \n", ""],
}


def fake_loader(calls=None):
    def load(split):
        if calls is not None:
            calls.append(split)
        return list(FAKE[split])
    return load


@pytest.fixture
def env(monkeypatch, tmp_path):
    """No $SEMPHASE_DATA_DIR, the local store in tmp_path/store."""
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv(data.STORE_ENV, str(tmp_path / "store"))
    return tmp_path / "store"


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()} if folder.exists() else {}


# -- the file format -------------------------------------------------------------------------------

def test_the_stored_file_is_the_shared_layout():
    rows = ["", " = A = \n", "", " text . \n", ""]
    assert rows_to_file(rows) == " \n = A = \n \n text . \n \n"
    assert file_lines_to_rows(rows_to_file(rows)) == rows


@pytest.mark.skipif(not (SHARED / "wikitext-2-raw" / "wiki.valid.raw").is_file(), reason="no ../shared/data copy")
def test_fetching_the_hubs_rows_gives_the_shared_file_byte_for_byte(env):
    """The hub's rows are the shared file's rows (test_data pins that rule); stored, they give back
    the shared file exactly (its sha256 from ../shared/data/README.md)."""
    raw = (SHARED / "wikitext-2-raw" / "wiki.valid.raw").read_text(encoding="utf-8")
    copies = fetch_wikitext(splits=("validation",), loader=lambda split: file_lines_to_rows(raw))
    assert copies[0].sha256 == SHARED_VALID_SHA256
    assert (env / "wikitext-2-raw" / "wiki.valid.raw").read_bytes() == raw.encode("utf-8")


# -- fetch ------------------------------------------------------------------------------------------

def test_fetch_stores_both_splits_with_checksums(env):
    copies = fetch_wikitext(loader=fake_loader())
    folder = env / "wikitext-2-raw"
    assert [c.split for c in copies] == ["validation", "test"]
    sums = read_checksums(folder)
    assert set(sums) == {"wiki.valid.raw", "wiki.test.raw"}
    for c in copies:
        assert c.chosen_by == "local store" and c.path.parent == folder.resolve()
        assert sums[c.path.name] == hashlib.sha256(c.path.read_bytes()).hexdigest() == c.sha256
        assert c.checksum == f"matches {CHECKSUMS}"
    # the format of `sha256sum -c`
    lines = (folder / CHECKSUMS).read_text().splitlines()
    assert lines == [f"{sums[n]}  {n}" for n in sorted(sums)]
    if shutil.which("sha256sum"):
        assert subprocess.run(["sha256sum", "--check", "--quiet", CHECKSUMS], cwd=folder).returncode == 0
    for split in ("validation", "test"):
        rows, copy = read_wikitext(split)
        assert rows == FAKE[split] and copy.chosen_by == "local store" and copy.source == f"store:wikitext-2-raw/{copy.path.name}"


def test_a_failed_fetch_loses_nothing(env):
    fetch_wikitext(loader=fake_loader())
    before = _snapshot(env)

    def half_broken(split):
        if split == "test":
            raise DataUnavailable("WikiText-2 (test) could not be loaded from the hub (ConnectionError); ...")
        return ["", " = New = \n"]

    with pytest.raises(DataUnavailable, match="could not be loaded"):
        fetch_wikitext(loader=half_broken)
    with pytest.raises(DataUnavailable, match="without a loss"):
        fetch_wikitext(loader=lambda split: [" \n", " = Odd = \n"])  # a blank row that is not empty
    assert _snapshot(env) == before


def test_hub_unreachable_is_one_sentence_and_writes_nothing(env, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # what _hub_reachable honours: no network attempt
    assert main(["data", "fetch"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert "the datasets hub cannot be reached from here" in err and "--data-dir" in err
    assert not env.exists()


def test_a_store_that_cannot_be_written_is_one_sentence(tmp_path, env, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["data", "fetch", "--store", str(blocker / "store")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "cannot be written" in err and "--store" in err
    assert blocker.read_text() == "x"


def test_fetch_and_where_through_the_cli_with_a_fake_hub(env, monkeypatch, capsys):
    import semphase.models

    calls = []
    monkeypatch.setattr(semphase.models, "_hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr(data, "hub_rows", fake_loader(calls))
    assert main(["data", "fetch"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert calls == ["validation", "test"]
    assert out[0].startswith("validation: stored ") and out[1].startswith("test: stored ")
    assert "by default" in out[2]
    assert main(["data", "where"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for line, split, name in zip(lines, ("validation", "test"), ("wiki.valid.raw", "wiki.test.raw")):
        assert line.startswith(f"{split}: {(env / 'wikitext-2-raw' / name).resolve()} (local store; sha256 ")
        assert f"matches {CHECKSUMS}" in line
    # another store: the command says how runs reach it
    assert main(["data", "fetch", "--store", str(env.parent / "other")]) == 0
    assert f"--data-dir {env.parent / 'other'}" in capsys.readouterr().out


# -- the lookup order --------------------------------------------------------------------------------

def _local(folder: Path, split: str, rows: list[str]) -> Path:
    path = folder / "wikitext-2-raw" / data.WIKITEXT_FILES[split]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rows_to_file(rows), encoding="utf-8")
    return folder


def test_lookup_order_data_dir_env_store_hub(env, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(data, "hub_rows", fake_loader(calls))
    assert locate_wikitext("validation") == DataCopy("validation", "hub")  # nothing local yet
    assert read_wikitext("validation")[0] == FAKE["validation"] and calls == ["validation"]
    fetch_wikitext(loader=lambda split: ["", f" = store {split} = \n"])
    assert read_wikitext("validation")[1].chosen_by == "local store"
    envdir = _local(tmp_path / "envdir", "validation", ["", " = env = \n"])
    monkeypatch.setenv(data.DATA_DIR_ENV, str(envdir))
    rows, copy = read_wikitext("validation")
    assert rows == ["", " = env = \n"] and copy.chosen_by == "$SEMPHASE_DATA_DIR" and copy.source.startswith("local:")
    given = _local(tmp_path / "given", "validation", ["", " = given = \n"])
    rows, copy = read_wikitext("validation", given)
    assert rows == ["", " = given = \n"] and copy.chosen_by == "--data-dir"
    assert copy.checksum == f"no {CHECKSUMS} beside it"
    # a named folder without the split is an error, never a silent fall-through to the store
    with pytest.raises(DataUnavailable, match=r"\$SEMPHASE_DATA_DIR\) has no wikitext-2-raw/wiki.test.raw"):
        read_wikitext("test")
    assert calls == ["validation"]


def test_a_store_copy_that_fails_its_checksum_is_an_error(env, capsys):
    fetch_wikitext(loader=fake_loader())
    path = env / "wikitext-2-raw" / "wiki.valid.raw"
    path.write_bytes(path.read_bytes() + b" extra \n")
    with pytest.raises(DataUnavailable, match=f"does not match its sha256 in {CHECKSUMS}"):
        read_wikitext("validation")
    assert main(["data", "where"]) == 0  # the test split is still readable
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("validation: none: ") and "data fetch" in lines[0]
    assert lines[1].startswith("test: ") and "local store" in lines[1]


def test_where_one_line_per_split_and_a_bad_data_dir(env, tmp_path, capsys):
    given = _local(tmp_path / "given", "validation", FAKE["validation"])
    assert main(["data", "where", "--data-dir", str(given)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"validation: {(given / 'wikitext-2-raw' / 'wiki.valid.raw').resolve()} (--data-dir; ")
    assert lines[1].startswith("test: none: ") and "has no wikitext-2-raw/wiki.test.raw" in lines[1]
    assert main(["data", "where", "--data-dir", str(tmp_path / "nowhere")]) == 2
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 2 and len(err.strip().splitlines()) == 1 and "can read no split" in err
    assert main(["data", "where"]) == 0  # nothing local: the hub, said so
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all("the datasets hub" in l for l in lines)


def test_unknown_split_is_one_sentence():
    with pytest.raises(SemphaseError, match="unknown WikiText split 'dev'"):
        locate_wikitext("dev")


# -- provenance --------------------------------------------------------------------------------------

def test_provenance_names_the_copy_used(env, tmp_path, tiny_llama):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_llama))
    fetch_wikitext(loader=fake_loader())
    ts = load_eval_tokens(tok, 16, 8)
    meta = ts.describe()
    store_file = (env / "wikitext-2-raw" / "wiki.valid.raw").resolve()
    # results name the copy by its place in the data folder and its hash, not by this machine's path
    assert meta["source"] == "store:wikitext-2-raw/wiki.valid.raw (wikitext-2-raw-v1 validation, local store)"
    assert meta["copy"] == {"split": "validation", "chosen_by": "local store", "path": "wikitext-2-raw/wiki.valid.raw",
                            "file_sha256": hashlib.sha256(store_file.read_bytes()).hexdigest(),
                            "checksum": f"matches {CHECKSUMS}"}
    given = _local(tmp_path / "given", "validation", FAKE["validation"])
    meta = load_eval_tokens(tok, 16, 8, data_dir=str(given)).describe()
    assert meta["source"].startswith("local:") and meta["copy"]["chosen_by"] == "--data-dir"
    # the tokens are the same text whichever copy holds it: the cache key does not change
    assert meta["tokens_sha256"] == ts.fingerprint
