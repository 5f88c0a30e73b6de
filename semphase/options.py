"""One option table for the command line (``python -m semphase run``) and the pytest plugin.

Both front ends build their options from :data:`OPTIONS`: the same flag, default and help text, so that
``python -m semphase run --help`` and ``pytest --help`` say the same thing. Where an option exists only on one
side (the CLI's ``--parts``, the plugin's ``--no-report``) the table says so. The plugin keeps each value under
``semphase_<dest>`` in pytest's namespace, so nothing collides with another plugin's attributes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

DEFAULT_MODEL = "smollm2-135m"
BUDGETS = ("smoke", "brief", "quick", "full")
BUDGET_HELP = ("smoke: every step on 2 chunks of 64 tokens, sanity only, no claim asserted (minutes); quick: the "
               "original's 2,048 tokens plus 8,192 held out (default; hours on two CPU cores for exp10, minutes on a "
               "GPU); brief: quick with exp10 limited to parts a, c, d, l (within 2 hours on two CPU cores; the "
               "claims of the other parts inconclusive, not measured); full: held out on the rest of the split")


@dataclass(frozen=True)
class Option:
    flag: str
    dest: str  # the Settings field (pytest: semphase_<dest>)
    help: str
    default: Any = None
    type: Any = None
    choices: tuple | None = None
    store_true: bool = False
    repeatable: bool = False  # pytest: always as given; CLI: only where the command takes several
    where: str = "both"  # "both", "cli" or "pytest"
    metavar: str | None = None
    aliases: tuple = ()  # other flags for the same option (pytest only: earlier names kept working)


OPTIONS: tuple[Option, ...] = (
    Option("--model", "models", "registry name (gpt2 ... gpt2-xl, pythia-70m ... pythia-12b, smollm2-135m), hub id, "
           f"folder, or random:NAME (its untrained twin); repeat it to compare models (default {DEFAULT_MODEL})",
           repeatable=True),
    Option("--device", "devices", "auto, cpu, cuda, cuda:N or mps (default auto); pytest: repeat it to run every "
           "test on each device", repeatable=True),
    Option("--budget", "budget", BUDGET_HELP, default="quick", choices=BUDGETS),
    Option("--tokens", "tokens", "tokens of the rank range, where rankings and in-sample statistics are measured "
           "(default: the budget's; 2,048 at quick)", type=int),
    Option("--ctx", "ctx", "chunk length in tokens (default: the budget's; 1,024 at quick)", type=int),
    Option("--eval-tokens", "eval_tokens", "held-out tokens after the rank range (default: the budget's; 8,192 at "
           "quick, the rest of the split at full)", type=int),
    Option("--replace-layers", "replace_layers", "exp10 phases 2-3: how many evenly spaced layers of 1..L-1 have "
           "their heads replaced, or 'all' (default: the budget's; 6 at quick, all at full; the original's protocol "
           "needs all)"),
    Option("--data-dir", "data_dir", "folder holding wikitext-2-raw/ (else $SEMPHASE_DATA_DIR, else the local store "
           "of `semphase data fetch`, else the hub)"),
    Option("--text-file", "text_file", "evaluate on this UTF-8 text file instead of WikiText-2"),
    Option("--split", "split", "WikiText-2 split (default: the experiment's; validation for exp10, test for exp8's "
           "angles)", choices=("train", "validation", "test")),
    Option("--processing", "processing", "weight processing (default: HookedTransformer's, as the original)",
           default="tl-default", choices=("tl-default", "none")),
    Option("--dtype", "dtype", "the model's weights and activations: float32 (default, as every committed result), "
           "bfloat16 or float16 (recorded in the cache key, the provenance and every report header)",
           default="float32", choices=("float32", "bfloat16", "float16")),
    Option("--revision", "revision", "a hub model's branch, tag or commit (default: main); recorded with the hub's "
           "file hashes of its weights"),
    Option("--seed", "seed", "seed of every random draw (nulls, bootstraps, controls, sampling); recorded in each "
           "result (default 0)", default=0, type=int, aliases=("--semphase-seed",)),
    Option("--output-dir", "output_dir", "write DIR/data, DIR/figures, DIR/reports, DIR/cache (default "
           "out/MODEL-BUDGET; 'results' names this repository's committed results/ and reports/)"),
    Option("--cache-dir", "cache_dir", "evidence cache (default: OUTPUT/cache)"),
    Option("--no-cache", "no_cache", "keep evidence in memory only", default=False, store_true=True),
    Option("--head-batch", "head_batch", "heads of one layer run as one batch (default: all heads on CUDA; on CPU as "
           "many as keep a batch within about 1,024 positions: 1 for 1,024-token chunks)", type=int),
    Option("--stimuli", "stimuli", "exp1-exp3, exp8: a stimuli file in the packaged file's format (default: the "
           "packaged set)"),
    Option("--claims", "claims_file", "a Python file of your own @rule claims on one experiment's evidence (see "
           "examples/my_claims.py; `claims check FILE` validates it without measuring)"),
    Option("--no-report", "no_report", "do not write data, figures or reports", default=False, store_true=True,
           where="pytest"),
)


def get(flag: str) -> Option:
    return next(o for o in OPTIONS if o.flag == flag)


def add_to_argparse(parser, flags: tuple[str, ...] | None = None, several_models: bool = True) -> None:
    """The table's CLI options (``flags``: only these) on an argparse parser; ``--model`` repeatable when the
    command takes several models, ``--device`` one per run."""
    for o in OPTIONS:
        if o.where == "pytest" or (flags is not None and o.flag not in flags):
            continue
        kw: dict[str, Any] = {"help": o.help, "dest": _cli_dest(o)}
        if o.store_true:
            kw["action"] = "store_true"
        else:
            if o.type is not None:
                kw["type"] = o.type
            if o.choices:
                kw["choices"] = list(o.choices)
            if o.metavar:
                kw["metavar"] = o.metavar
            if o.flag == "--model" and several_models:
                kw.update(action="append", default=None)
            elif o.flag == "--model":
                kw["default"] = DEFAULT_MODEL
            elif o.flag == "--device":
                kw["default"] = "auto"
            else:
                kw["default"] = o.default
        parser.add_argument(o.flag, **kw)


def _cli_dest(o: Option) -> str:
    # the CLI's namespace keeps the flag's own name (args.model, args.device), as the commands read them
    return {"models": "model", "devices": "device"}.get(o.dest, o.dest)


def add_to_pytest(group) -> None:
    """The table's pytest options, each under ``semphase_<dest>``."""
    for o in OPTIONS:
        if o.where == "cli":
            continue
        kw: dict[str, Any] = {"help": o.help, "dest": f"semphase_{o.dest}"}
        if o.store_true:
            kw.update(action="store_true", default=False)
        elif o.repeatable:
            kw.update(action="append", default=None)
        else:
            kw["default"] = o.default
            if o.type is not None:
                kw["type"] = o.type
        if o.choices and not o.store_true:
            kw["choices"] = list(o.choices)
        group.addoption(o.flag, *o.aliases, **kw)


def default_output_dir(models, budget: str) -> str:
    """``out/MODEL-BUDGET`` (models joined by '+'; a folder's or hub id's last part; random:NAME as random-NAME):
    a run writes nothing into the repository's committed results unless asked to."""
    names = []
    for m in models:
        m = str(m).rstrip("/")
        m = m.replace("random:", "random-")
        names.append(re.sub(r"[^A-Za-z0-9._-]+", "_", m.split("/")[-1]) or "model")
    return f"out/{'+'.join(names)}-{budget}"
