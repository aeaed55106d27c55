#!/usr/bin/env bash
# The quick start in one command: install mlkit with its runtime into .venv, scaffold the sentiment
# example, render its AWS Terraform, serve it locally with the same runtime the cluster runs, and
# send it a request. Pass --keep to leave the server running on 127.0.0.1:8080.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
PORT=${PORT:-8080}
KEEP=${1:-}

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q -e '.[runtime]'
MLKIT="$PWD/.venv/bin/mlkit"

rm -rf .quickstart && mkdir -p .quickstart
cd .quickstart
"$MLKIT" init demo
cd demo
"$MLKIT" validate
"$MLKIT" render
echo "--- infra/ now holds $(find infra -name '*.tf' | wc -l) Terraform files and $(find infra/k8s -name '*.yaml' | wc -l) Kubernetes manifests; review them, then \`mlkit apply\` provisions AWS and deploys."

"$MLKIT" serve --port "$PORT" > serve.log 2>&1 &
SERVER=$!
trap '[ "$KEEP" = "--keep" ] || kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if curl -sf "http://127.0.0.1:$PORT/readyz" > /dev/null; then break; fi
  if ! kill -0 $SERVER 2>/dev/null; then cat serve.log; exit 1; fi
  sleep 0.1
done
echo "--- POST /predict {\"text\": \"I love how fast this is\"}"
curl -sf -H 'Content-Type: application/json' -d '{"text": "I love how fast this is"}' "http://127.0.0.1:$PORT/predict"
echo
if [ "$KEEP" = "--keep" ]; then
  echo "--- serving on http://127.0.0.1:$PORT (docs at /docs); stop it with: kill $SERVER"
fi
