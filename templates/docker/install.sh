#!/bin/sh
# Installs a predictor image's Python packages into the python on PATH. The Dockerfile RUNs this
# script, and mlkit's pod-contract test runs the same script to build the venv it serves from, so the
# two cannot drift. Run from anywhere: it reads the files beside it.
#   mlkit_runtime-*.whl           the predictor runtime, built by `mlkit build` from the mlkit that
#                                 renders the manifests; pip checks every file against its RECORD
#   accelerator-requirements.txt  packages for the API's accelerator (empty for CPU and the CUDA base)
#   runtime-extra-requirements.txt  the runtime's optional clients the API uses (an async API's queue
#                                 and result store: boto3 on AWS, the Pub/Sub and GCS clients on GCP)
#   requirements.txt              the project's own requirements
# MLKIT_SKIP_ACCELERATOR=1 leaves the accelerator packages out (they need the accelerator's index).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python -m pip install --disable-pip-version-check "$here"/mlkit_runtime-*.whl
if [ "${MLKIT_SKIP_ACCELERATOR:-0}" != "1" ] && grep -q '^[^#[:space:]]' "$here/accelerator-requirements.txt"; then
  python -m pip install --disable-pip-version-check -r "$here/accelerator-requirements.txt"
fi
if grep -q '^[^#[:space:]]' "$here/runtime-extra-requirements.txt"; then
  python -m pip install --disable-pip-version-check -r "$here/runtime-extra-requirements.txt"
fi
if grep -q '^[^#[:space:]]' "$here/requirements.txt"; then
  python -m pip install --disable-pip-version-check -r "$here/requirements.txt"
fi
python -c "import mlkit_runtime.server, mlkit_runtime.routes"
