#!/usr/bin/env bash
# Build the development environment from nothing: .venv with mlkit (editable), the runtime, the test
# tools and the CPU build of PyTorch; checkov in its own venv (it pins an old boto3).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch is pinned: an unpinned torch pulls a multi-GB CUDA build; 2.13.0 is the CPU wheel.
.venv/bin/python -m pip install -q -e '.[runtime,test]' 'torch==2.13.0'

# Prometheus (Debian's package) runs the dashboard and autoscaling queries in tests/render/test_dashboard.py;
# without it (not root, no apt) that test skips and says why.
if ! command -v prometheus >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get install -y -q prometheus >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q prometheus >/dev/null 2>&1; }) || echo "could not install prometheus; its tests will skip" >&2
fi

if [ "${MLKIT_SKIP_CHECKOV:-0}" != "1" ] && [ ! -x .venv-checkov/bin/checkov ]; then
  "$PYTHON" -m venv .venv-checkov
  .venv-checkov/bin/python -m pip install -q checkov
fi
