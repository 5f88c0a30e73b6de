"""When exp10's rules apply: the original's protocol for reproduction tests, a held-out range
(and a held-out curve) for hypothesis tests. Shared by :mod:`.claims` and
:mod:`.claims_phases23` (which ``claims`` imports, so neither may import the other first)."""
from __future__ import annotations

from ...claims import MissingEvidence, requires
from ...models import registry_name


def _original_protocol(ev: dict) -> str | None:
    """Why a reproduction test does not apply, or None when it does."""
    if registry_name(ev["model"]) != "gpt2":
        return f"reproduction tests compare with the original's GPT-2 small numbers; this run is on {ev['model']}"
    src = ev["data"].get("source", "")
    if "wikitext-2-raw-v1 validation" not in src or ev["data"]["ctx"] != 1024 or ev["n_tokens"] != 2048:
        return ("reproduction tests need the original protocol: WikiText-2 validation, the first 2,048 tokens "
                "in chunks of 1,024 (--budget quick)")
    return None


def _every_layer(ev: dict) -> str | None:
    """Why a phase 2-3 reproduction test does not apply to a head sample (the original replaced every
    head of layers 1..L-1), or None."""
    lin = ev.get("linear")
    if lin is None:
        return None
    swept, every = list(lin.get("layers") or []), list(range(1, ev["n_layers"]))
    if swept != every:
        return (f"the original replaced every head of layers 1-{ev['n_layers'] - 1}; this run's part i swept layers "
                f"{swept} (the budget's sample): add --replace-layers all")
    return None


def _heldout(ev: dict) -> str | None:
    if ev.get("heldout") is None:
        return ("held-out tests need a held-out range after the rank range (the data hold less than one chunk "
                "after it; lower --tokens or --ctx, or raise --eval-tokens)")
    return None


# the part that measures each held-out curve (said when a rule skips for want of it)
CURVE_PART = {"zero_all_heldout": "c", "mean_l0p_heldout": "f", "mean_l0p_sample_heldout": "k", "zero_l0p_heldout": "g",
              "linear_l0p_heldout": "k", "mixed_l0p_heldout": "k", "kernel_l0p_heldout": "k",
              "linear_l0p_validation": "v"}


def _heldout_curve(ev: dict, name: str) -> str | None:
    why = _heldout(ev) or requires(ev, "curves")
    if why or name not in ev["curves"]:
        part = CURVE_PART.get(name)
        return why or MissingEvidence(f"no held-out curve {name} in this evidence" +
                                      (f" (part {part} was not run: add it to --parts)" if part else ""))
    return None


def _same_pool(ev: dict, a: str, b: str) -> str | None:
    """Why two curves' thresholds cannot be compared (they rank different candidate pools: the
    mean-ablation curve every head of layers 1..L-1, a linearisation curve on a layer sample only
    the sampled layers' heads), or None."""
    why = _heldout_curve(ev, a) or _heldout_curve(ev, b)
    if why:
        return why
    na, nb = ev["curves"][a]["n_candidates"], ev["curves"][b]["n_candidates"]
    if na != nb:
        return (f"{a} ranks {na} candidate heads and {b} {nb}: their thresholds count different pools "
                f"({_every_layer(ev) or 'the runs differ'})")
    return None
