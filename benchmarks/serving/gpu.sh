#!/usr/bin/env bash
# The encoder on CUDA through mlkit_runtime: p50/p99 at concurrency 1, and throughput with batching
# at concurrency 64 (hey, closed loop), next to the bare forward throughput on the same GPU.
# Run from the repo root on a machine with an NVIDIA GPU, torch and the runtime's dependencies.
set -euo pipefail
HEY=${HEY:-hey}
PY=${PYTHON:-python3}
PORT=${PORT:-8177}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-15}
cd "$(dirname "$0")"
export PYTHONPATH="$PWD:${PYTHONPATH:-}"

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
echo "bare encoder forward on cuda, samples/s by batch size:"
$PY models.py encoder cuda

$PY -c "import json, models; print(json.dumps(models.payload('encoder')))" > /tmp/encoder.json
$PY -m mlkit_runtime --predictor mlkit_predictor.py:Predictor --config '{"model": "encoder", "device": "auto"}' \
  --port "$PORT" --name encoder --max-batch-size 64 --max-wait-ms 2 --max-in-flight 128 --max-queue 256 --no-access-log \
  > /tmp/server.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
  sleep 1
done
$HEY -z 3s -c 8 -m POST -T application/json -D /tmp/encoder.json "http://127.0.0.1:$PORT/predict" >/dev/null  # warm-up
# "sum count" of the batch-size histogram
batches() { curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^mlkit_batch_size_sum /{s=$2} /^mlkit_batch_size_count /{c=$2} END{print s, c}'; }
for c in 1 64; do
  before=$(batches)
  echo "== concurrency $c"
  $HEY -z "${SECONDS_PER_RUN}s" -c "$c" -m POST -T application/json -D /tmp/encoder.json "http://127.0.0.1:$PORT/predict" \
    | grep -E "Requests/sec|50% in|90% in|99% in|\[[0-9]+\]"
  after=$(batches)
  echo "$before $after" | awk '{ if ($4 > $2) printf "mean batch size: %.1f\n", ($3-$1)/($4-$2) }'
done
grep -E "ready:|Error|Traceback" /tmp/server.log || true
