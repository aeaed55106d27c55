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

if [ "${MLKIT_SKIP_CHECKOV:-0}" != "1" ] && [ ! -x .venv-checkov/bin/checkov ]; then
  "$PYTHON" -m venv .venv-checkov
  .venv-checkov/bin/python -m pip install -q checkov
fi
