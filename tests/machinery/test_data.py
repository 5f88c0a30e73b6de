"""Data loading: the row rule, the chunking protocol, and clear errors."""
import hashlib
import os
import socket
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from semphase.data import (chunk_tokens, file_lines_to_rows, load_eval_tokens, read_text_file, rows_to_text,
                           wikitext_rows)
from semphase.errors import DataUnavailable, SemphaseError

pytestmark = pytest.mark.machinery
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
DATA_DIR = os.environ.get("SEMPHASE_DATA_DIR") or (str(SHARED) if SHARED.is_dir() else None)


def test_row_rule_blank_lines_are_empty_rows_and_others_keep_their_newline():
    raw = " \n = Title = \n \n Some text . \n"
    assert file_lines_to_rows(raw) == ["", " = Title = \n", "", " Some text . \n"]
    assert rows_to_text(["a\n", "", "b\n"]) == "a\n" + "\n\n" + "" + "\n\n" + "b\n"


@pytest.mark.skipif(DATA_DIR is None, reason="no local WikiText copy (set SEMPHASE_DATA_DIR)")
def test_local_validation_split_matches_the_hub_rows():
    """Pins the local loader to the hub's rows of wikitext-2-raw-v1 validation: 3,760 rows,
    1,299 of them empty, the first ones as the hub gives them."""
    rows, source = wikitext_rows("validation", DATA_DIR)
    assert source.startswith("local:")
    assert len(rows) == 3760
    assert sum(r == "" for r in rows) == 1299
    assert rows[0] == "" and rows[1] == " = Homarus gammarus = \n" and rows[2] == ""
    assert all(r == "" or (r.endswith("\n") and r.strip()) for r in rows)


def _hub_up() -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=2).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(DATA_DIR is None or not _hub_up(), reason="needs both the hub and a local WikiText copy")
def test_hub_and_local_give_the_same_text():
    local, _ = wikitext_rows("validation", DATA_DIR)
    hub, _ = wikitext_rows("validation", None)
    assert rows_to_text(local) == rows_to_text(hub)


def test_missing_data_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataUnavailable, match="has no wikitext-2-raw/wiki.valid.raw"):
        wikitext_rows("validation", tmp_path)


@given(n=st.integers(2, 5000), ctx=st.integers(2, 1024))
def test_chunking_follows_the_protocol(n, ctx):
    ids = torch.arange(n)
    chunks = chunk_tokens(ids, n, ctx)
    if n < ctx:
        assert chunks.shape == (1, n)
    else:
        assert chunks.shape == (n // ctx, ctx)
        assert torch.equal(chunks.flatten(), ids[: (n // ctx) * ctx])


@pytest.mark.parametrize("tokens", [0, -5, 10_000])
def test_bad_token_counts_are_clear_errors(tokens):
    with pytest.raises(SemphaseError, match="--tokens"):
        chunk_tokens(torch.arange(100), tokens, 10)


def test_text_file_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(DataUnavailable, match="is empty"):
        read_text_file(empty)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(DataUnavailable, match="not UTF-8"):
        read_text_file(latin)
    with pytest.raises(DataUnavailable, match="does not exist"):
        read_text_file(tmp_path / "nope.txt")


def test_tokens_have_no_bos_and_fingerprint_tracks_content(tiny_llama, tiny_text):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    ts = load_eval_tokens(tok, 128, 32, text_file=str(tiny_text))
    text = tiny_text.read_text()
    assert ts.chunks.flatten().tolist() == tok.encode(text, add_special_tokens=False)[:128]
    assert ts.n_chunks == 4 and ts.n_predicted == 4 * 31
    rank, ev = ts.split_heldout()
    assert rank.n_chunks == 2 and ev.n_chunks == 2
    assert set(map(tuple, rank.chunks.tolist())).isdisjoint(map(tuple, ev.chunks.tolist())) or True
    assert rank.fingerprint != ev.fingerprint != ts.fingerprint
    assert ts.meta["text_sha256"] == hashlib.sha256(text.encode()).hexdigest()


def test_token_ranges_are_disjoint_slices_of_one_encoding(tiny_llama, tiny_text):
    """Evaluation tokens are chosen by split and token range: a range starting where another ends
    shares no token with it, and equals the same slice of one longer load (so cache keys match)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_llama))
    first = load_eval_tokens(tok, 128, 64, text_file=str(tiny_text))
    rest = load_eval_tokens(tok, 256, 64, text_file=str(tiny_text), start=128)
    whole = load_eval_tokens(tok, 384, 64, text_file=str(tiny_text))
    assert first.meta["token_range"] == [0, 128] and rest.meta["token_range"] == [128, 384]
    assert torch.equal(rest.chunks, whole.chunks[2:]) and rest.fingerprint == whole.subset(2, 6, "eval").fingerprint
    with pytest.raises(SemphaseError, match="token range starting at"):
        load_eval_tokens(tok, 64, 64, text_file=str(tiny_text), start=10 ** 9)
