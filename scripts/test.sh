#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# Lint, types and Terraform formatting (configured in pyproject.toml; .pre-commit-config.yaml runs the
# same before each commit): any finding fails the run, before the tests start.
echo "ruff, mypy, terraform fmt" >&2
.venv/bin/ruff check --quiet .
.venv/bin/mypy
if command -v terraform > /dev/null; then
  terraform fmt -check -recursive terraform
else
  echo "test.sh: terraform is not on PATH; skipping terraform fmt -check" >&2
fi

# Terraform providers come from a local filesystem mirror where one exists (no registry access needed).
if [ -z "${MLKIT_TF_PROVIDER_MIRROR:-}" ]; then
  for candidate in /opt/tf-plugins "$HOME/.terraform.d/plugins"; do
    if [ -d "$candidate/registry.terraform.io/hashicorp/aws" ]; then
      export MLKIT_TF_PROVIDER_MIRROR="$candidate"
      break
    fi
  done
fi
if [ -x .venv-checkov/bin/checkov ]; then
  export MLKIT_CHECKOV="$PWD/.venv-checkov/bin/checkov"
fi

# Three phases (markers and groups in tests/conftest.py). First everything not marked `serial` on several
# xdist workers: most tests wait on subprocesses (terraform, servers, the CLI), so more workers than cores
# pays; each file stays on one worker (its module fixtures are made once) and the tests of one
# session-wide server share a worker. Beside it, at the same time and on workers of its own, the moto
# end-to-end tests (`e2e`): each spends a minute or two waiting on the aws provider's polls, so they overlap
# with the first phase's work instead of running after it; their output is printed when both are done.
# Then the `serial` tests alone, one at a time: they time, load or measure the machine and must not share
# the CPU. Every phase's result counts; for the whole suite a phase that collects nothing (pytest's exit 5)
# is a failure, not a pass; with arguments (a subset) some phases may be empty, not all. The slowest tests
# of each phase are printed.
workers="${MLKIT_TEST_WORKERS:-3}"
e2e_workers="${MLKIT_TEST_E2E_WORKERS:-4}"
phase() {
  local name="$1"
  shift
  echo "test.sh: $name" >&2
  set +e
  .venv/bin/python -m pytest -ra --durations=25 "$@"
  local code=$?
  set -e
  if [ "$code" -eq 5 ]; then
    empty=$((empty + 1))
    # The whole suite (CI: no arguments) has tests in every phase: an empty one means the marks broke.
    if [ "$subset" -eq 0 ]; then
      echo "test.sh: $name collected no tests: that is a failure, not a pass" >&2
      return 1
    fi
    echo "test.sh: $name: none of the chosen tests is in this phase" >&2
    return 0
  fi
  return "$code"
}
subset=$(( $# > 0 ? 1 : 0 ))
empty=0
# The e2e tests live under tests/terraform (tests/conftest.py stops a run that finds one elsewhere), so the
# whole suite's e2e phase collects only that folder.
e2e_paths=("$@")
[ "$subset" -eq 0 ] && e2e_paths=(tests/terraform)
e2e_log=$(mktemp "${TMPDIR:-/tmp}/mlkit-e2e.XXXXXX")
trap 'rm -f "$e2e_log" "$e2e_log.code"' EXIT
(
  code=0
  phase "e2e phase ($e2e_workers workers, moto end to end, beside the parallel phase)" \
    -n "$e2e_workers" --dist loadgroup -m "e2e and not serial" "${e2e_paths[@]}" || code=$?
  echo "$code $empty" > "$e2e_log.code"
) > "$e2e_log" 2>&1 &
e2e_pid=$!
parallel=0
phase "parallel phase ($workers workers, not serial, not e2e)" -n "$workers" --dist loadgroup -m "not serial and not e2e" "$@" || parallel=$?
wait "$e2e_pid" || true
cat "$e2e_log"
read -r e2e e2e_empty < "$e2e_log.code" || { e2e=1; e2e_empty=0; }
rm -f "$e2e_log.code"
empty=$((empty + e2e_empty))
alone=0
phase "serial phase (one at a time)" -m serial "$@" || alone=$?
if [ "$empty" -eq 3 ]; then
  echo "test.sh: no test was collected in any phase: that is a failure, not a pass" >&2
  exit 1
fi
if [ "$parallel" -ne 0 ] || [ "$e2e" -ne 0 ] || [ "$alone" -ne 0 ]; then
  echo "test.sh: parallel phase exit $parallel, e2e phase exit $e2e, serial phase exit $alone" >&2
  [ "$parallel" -ne 0 ] && exit "$parallel"
  [ "$e2e" -ne 0 ] && exit "$e2e"
  exit "$alone"
fi
