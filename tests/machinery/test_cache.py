"""The evidence cache cannot lie: checksums, keys, atomic writes, resumption."""
import json
import logging

import pytest

from semphase.cache import EvidenceStore, atomic_write_text

pytestmark = pytest.mark.machinery
KEY = {"model": "m", "weights_sha256": "abc", "tokens_sha256": "t1", "measurement_version": "1"}


def _unit_file(store, kind, key, unit):
    return store.entry(kind, key).dir / f"{unit}.json"


def test_roundtrip_and_hit(tmp_path):
    store = EvidenceStore(tmp_path)
    e = store.entry("single-zero", KEY)
    e.put("L0_c0", [[1.5, 2.25]])
    assert store.entry("single-zero", KEY).get("L0_c0") == [[1.5, 2.25]]


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_damaged_unit_is_reported_deleted_and_recomputed(tmp_path, caplog, damage):
    store = EvidenceStore(tmp_path)
    store.entry("single-zero", KEY).put("L0_c0", [[1.5, 2.25]])
    path = _unit_file(store, "single-zero", KEY, "L0_c0")
    raw = path.read_bytes()
    if damage == "flip":
        i = raw.index(b"2.25")
        raw = raw[:i] + b"3" + raw[i + 1:]
    elif damage == "truncate":
        raw = raw[: len(raw) // 2]
    else:
        raw = b"\x00\xff nonsense"
    path.write_bytes(raw)
    calls = []
    with caplog.at_level(logging.WARNING, logger="semphase.cache"):
        value = store.entry("single-zero", KEY).get_or_compute("L0_c0", lambda: calls.append(1) or [[9.0]])
    assert value == [[9.0]] and calls == [1]
    assert len([r for r in caplog.records if "recomputed" in r.getMessage()]) == 1
    assert store.stats["corrupt"] == 1
    assert store.entry("single-zero", KEY).get("L0_c0") == [[9.0]]


def test_unit_under_another_key_is_never_reused(tmp_path):
    store = EvidenceStore(tmp_path)
    store.entry("single-zero", KEY).put("L0_c0", [1.0])
    # a changed key lives elsewhere ...
    for change in ({"weights_sha256": "other"}, {"tokens_sha256": "t2"}, {"measurement_version": "2"}):
        assert store.entry("single-zero", dict(KEY, **change)).get("L0_c0") is None
    # ... and a file moved under a foreign key is detected
    other = dict(KEY, tokens_sha256="t2")
    src = _unit_file(store, "single-zero", KEY, "L0_c0")
    dst = _unit_file(store, "single-zero", other, "L0_c0")
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(src.read_bytes())
    assert store.entry("single-zero", other).get("L0_c0") is None


def test_atomic_write_leaves_no_partial_files(tmp_path):
    target = tmp_path / "x.json"
    atomic_write_text(target, json.dumps({"a": 1}))
    atomic_write_text(target, json.dumps({"a": 2}))
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_tuples_in_keys_read_back_equal(tmp_path):
    store = EvidenceStore(tmp_path)
    key = dict(KEY, order=[(0, 1), (2, 3)])
    store.entry("curve-zero", key).put("n5_c0", [1.0])
    assert store.entry("curve-zero", key).get("n5_c0") == [1.0]
    assert store.stats["corrupt"] == 0


def test_memory_store_keeps_nothing_on_disk(tmp_path):
    store = EvidenceStore(None)
    store.entry("k", KEY).put("u", [1])
    assert store.entry("k", KEY).get("u") == [1]


def test_units_keep_their_compute_time_for_a_resumed_run(tmp_path):
    """A unit records how long it took; a second store reading it back counts those seconds as the
    cost of the cached part (a unit written without a time counts as a hit, untimed)."""
    import time

    first = EvidenceStore(tmp_path)
    entry = first.entry("sweep", {"m": 1})
    entry.get_or_compute("u0", lambda: (time.sleep(0.05), 1)[1])
    entry.put("u1", 2)  # no time given
    assert first.stats["computed"] == 2 and first.stats["computed_seconds"] >= 0.05
    again = EvidenceStore(tmp_path)
    entry = again.entry("sweep", {"m": 1})
    assert entry.get("u0") == 1 and entry.get("u1") == 2
    assert again.stats["hits"] == 2 and again.stats["hits_timed"] == 1
    assert again.stats["hit_seconds"] >= 0.05 and again.stats["computed"] == 0


def test_cache_command_sums_units_and_their_compute_time_per_measurement(tmp_path, capsys):
    """`semphase cache` counts each measurement's units per model and chunk count and sums the seconds they took
    when computed, a unit stored without its time counted apart; a missing folder is refused with exit 2."""
    from semphase import cli
    from semphase.cache import summarize

    store = EvidenceStore(tmp_path / "cache")
    sweep = store.entry("single-zero", dict(KEY, n_chunks=8, ctx=1024, device_type="cpu"))
    for c in range(3):
        sweep.put(f"L0_c{c}", [c], seconds=30.0)
    store.entry("single-zero", dict(KEY, n_chunks=2, ctx=1024, device_type="cpu")).put("L0_c0", [0], seconds=12.5)
    store.entry("baseline", dict(KEY, model="random:m", n_chunks=8, ctx=1024, device_type="cpu")).put("c0", [1])
    rows = {(r["kind"], r["model"], r["chunks"]): r for r in summarize(tmp_path / "cache")}
    assert rows[("single-zero", "m", 8)]["units"] == 3 and rows[("single-zero", "m", 8)]["seconds"] == 90.0
    assert rows[("single-zero", "m", 2)]["seconds"] == 12.5
    assert rows[("baseline", "random:m", 8)]["untimed"] == 1 and rows[("baseline", "random:m", 8)]["seconds"] == 0
    assert cli.main(["cache", "--cache-dir", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    assert "1.7 min (" not in out and "1 without a time" in out
    assert [line.split()[-2] for line in out.splitlines() if line.startswith("all ")] == ["1.7", "0.0"]  # m, then random:m
    assert cli.main(["cache", "--output-dir", str(tmp_path / "elsewhere")]) == 2
    assert "no cache folder" in capsys.readouterr().err
