"""One option table: `python -m semphase run` and the pytest plugin offer the same options, with the same defaults
and help; a run without --output-dir writes into out/MODEL-BUDGET, never into the committed results/."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from semphase import cli, options

pytestmark = pytest.mark.machinery
ROOT = Path(__file__).resolve().parents[2]


class _Group:
    def __init__(self):
        self.options = {}

    def addoption(self, *flags, **kw):
        for f in flags:
            self.options[f] = kw


def _run_parser():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices["run"]


def test_cli_and_plugin_offer_the_same_options_with_the_same_defaults_and_help():
    """Every option the plugin offers that the table shares with the CLI is on `run` with the same help and
    default, and every `run` option outside the CLI's own (parts, layers, cluster ...) is on the plugin."""
    group = _Group()
    options.add_to_pytest(group)
    run = {f: a for a in _run_parser()._actions for f in a.option_strings}
    shared = [o for o in options.OPTIONS if o.where == "both"]
    for o in shared:
        assert o.flag in run and o.flag in group.options, o.flag
        assert run[o.flag].help == group.options[o.flag]["help"] == o.help
        if not o.repeatable:
            assert run[o.flag].default == group.options[o.flag]["default"] == o.default, o.flag
    cli_only = {"-h", "--help", "--quiet", "--strict", "--parts", "--layers", "--reuse-evidence", "--executor",
                "--shards", "--partition", "--gpus-per-task", "--cpus-per-task", "--mem-gb", "--time",
                "--array-parallelism", "--log-dir", "--slurm"}
    assert set(run) - cli_only <= set(group.options)
    assert group.options["--seed"] is group.options["--semphase-seed"]  # the plugin's earlier name still works


def test_a_run_without_output_dir_writes_out_model_budget_not_results(tiny_llama, tiny_text, tmp_path):
    """Without --output-dir, a run writes out/MODEL-BUDGET/ under the folder it runs in; no results/ appears."""
    res = subprocess.run([sys.executable, "-m", "semphase", "run", "exp10", "--model", str(tiny_llama), "--text-file",
                          str(tiny_text), "--quiet", "--parts", "a", "--tokens", "128", "--ctx", "64", "--layers", "0"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=600,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert res.returncode == 0, res.stderr[-3000:]
    out = tmp_path / "out" / f"{tiny_llama.name}-quick"
    assert (out / "reports" / "README.md").is_file() and list((out / "data").glob("exp10a_*.json"))
    assert not (tmp_path / "results").exists() and not (tmp_path / "reports").exists()


@pytest.mark.parametrize("models, budget, expected", [
    (["smollm2-135m"], "quick", "out/smollm2-135m-quick"),
    (["gpt2", "EleutherAI/pythia-70m"], "smoke", "out/gpt2+pythia-70m-smoke"),
    (["random:smollm2-135m"], "full", "out/random-smollm2-135m-full"),
    (["/data/models/my model/"], "quick", "out/my_model-quick"),
])
def test_default_output_folder_names(models, budget, expected):
    assert options.default_output_dir(models, budget) == expected


def test_results_names_the_committed_layout(tmp_path):
    from semphase.report import OutputLayout

    named = OutputLayout.make(tmp_path / "results", tmp_path)
    assert named.reports == tmp_path / "reports" and named.data == tmp_path / "results" / "data"
    other = OutputLayout.make(tmp_path / "elsewhere", tmp_path)
    assert other.reports == tmp_path / "elsewhere" / "reports"


def test_figures_are_written_as_png_and_pdf_with_a_caption(tmp_path):
    """Every figure is a PNG with a vector PDF beside it, and the report prints its caption (read from the PNG)."""
    import matplotlib.figure

    from semphase.report import OutputLayout, figure_links, read_caption, save_figure

    layout = OutputLayout.make(tmp_path / "out")
    fig = matplotlib.figure.Figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [1, 2], label="zero-ablation, every head, held-out")
    ax.set_xlabel("heads ablated")
    ax.set_ylabel("PPL / baseline")
    ax.legend()
    fig.suptitle("cumulative zero-ablation")
    save_figure(fig, layout.figures / "exp10c_pareto_m.png")
    assert (layout.figures / "exp10c_pareto_m.pdf").read_bytes()[:5] == b"%PDF-"
    caption = read_caption(layout.figures / "exp10c_pareto_m.png")
    assert "cumulative zero-ablation" in caption and "PPL / baseline against heads ablated" in caption
    assert "zero-ablation, every head, held-out" in caption
    lines = figure_links(layout, "exp10c_*_m.png")
    assert any(caption in l and "[PDF](" in l for l in lines), lines


@pytest.mark.parametrize("name, words", [
    ("zero_all_heldout", "zero-ablation, every head, held-out"),
    ("mean_l0p", "mean-ablation, layer 0 kept, rank range"),
    ("mean_l0p_sample_heldout", "mean-ablation, layer 0 kept, layer sample, held-out"),
    ("linear_l0p_validation", "relu attention, layer 0 kept, validation range"),
    ("crossfit_a_on_B", "ranking of range a, on range B"),
    ("something_else", "something_else"),
])
def test_curve_names_in_words(name, words):
    from semphase.experiments.exp10.figures import curve_words

    assert curve_words(name) == words


def test_pytest_shows_progress_only_when_output_is_not_captured(tmp_path):
    """Under pytest the sweeps' progress bars (with their ETA) show with -s, and stay quiet when pytest captures
    output or on an xdist worker."""
    from types import SimpleNamespace

    from semphase.options import OPTIONS
    from semphase.pytest_plugin import _settings

    base = {f"semphase_{o.dest}": (False if o.store_true else (None if o.repeatable else o.default))
            for o in OPTIONS if o.where != "cli"}
    for capture, worker, shown in (("no", False, True), ("fd", False, False), ("no", True, False)):
        config = SimpleNamespace(option=SimpleNamespace(capture=capture, **base), rootpath=tmp_path)
        if worker:
            config.workerinput = {"workerid": "gw0"}
        assert _settings(config).progress is shown, (capture, worker)
