#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# Compiled modules go to a cache outside the tree, even where the environment says not to write them
# (PYTHONDONTWRITEBYTECODE=1 on the CI machines): every pytest process (each xdist worker collects the
# suite) and every `python -m mlkit` or runtime a test starts otherwise compiles the kit's modules from
# source and rewrites each test module's asserts again (collecting the suite: 15 to 18 CPU-s without the
# cache, 9 to 10 with it; two CLI-heavy test files: 108-110 CPU-s without, 89.5 with it; docs/testing.md).
# Outside the tree: no __pycache__ lands in examples or build contexts. Set before setup.sh, which then
# tells pip not to compile what Python would never read (setup.sh says why).
unset PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX="${PYTHONPYCACHEPREFIX:-${TMPDIR:-/tmp}/mlkit-pycache}"
bash scripts/setup.sh

# Lint, types and Terraform formatting (configured in pyproject.toml; .pre-commit-config.yaml runs the
# same before each commit): any finding fails the run. ruff and terraform fmt take a second and stop
# the run before the tests start; mypy (about 20 CPU-s from cold, 30 s of wall) runs beside the first
# phases, and its findings fail the run when it ends (printed then, and again at the end).
echo "ruff, mypy, terraform fmt" >&2
.venv/bin/ruff check --quiet .
if command -v terraform > /dev/null; then
  terraform fmt -check -recursive terraform
else
  echo "test.sh: terraform is not on PATH; skipping terraform fmt -check" >&2
fi
mypy_log=$(mktemp "${TMPDIR:-/tmp}/mlkit-mypy.XXXXXX")
( .venv/bin/mypy > "$mypy_log" 2>&1 || { echo "test.sh: mypy found problems (the run fails at the end):" >&2; cat "$mypy_log" >&2; exit 1; } ) &
mypy_pid=$!

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
# Each test's wall and CPU seconds (tests/conftest.py, MLKIT_TEST_CPU) and the machine's /proc/stat
# every 5 s: after each phase tests/cpu_report.py prints the CPU its tests used, how busy the machine
# was minute by minute (a phase bound by the CPU, by waits, or ending in a tail where one worker runs
# alone) and the tests that used the most CPU.
cpu_dir=$(mktemp -d "${TMPDIR:-/tmp}/mlkit-cpu.XXXXXX")
( while sleep 5; do echo "$(date +%s.%N) $(head -1 /proc/stat)"; done ) > "$cpu_dir/stat" 2>/dev/null &
sampler_pid=$!
phase() {
  local name="$1"
  shift
  echo "test.sh: $name" >&2
  local tag="${name%% *}" start
  start=$(date +%s.%N)
  set +e
  MLKIT_TEST_CPU="$cpu_dir/$tag.jsonl" .venv/bin/python -m pytest -ra --durations=25 "$@"
  local code=$?
  set -e
  .venv/bin/python -m tests.cpu_report "$tag phase" "$cpu_dir/$tag.jsonl" "$cpu_dir/stat" "$start" "$(date +%s.%N)" || true
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
# The runtime's suites again with every server as two HTTP fronts and a model process (MLKIT_TEST_FRONTS,
# tests/runtime/conftest.py; issue 26: every route, hostile input, overload, drain and streaming keep their
# promises in both modes). For the whole suite only: a subset runs as chosen, one mode (set
# MLKIT_TEST_FRONTS=2 yourself for the other). Their not-serial tests follow the e2e phase on its worker
# slot, beside the parallel phase; their serial ones follow the serial phase, one at a time. Not here:
# test_fronts.py and test_fronts_shm.py, whose servers name their --fronts (the flag wins over the
# variable: a second run would be the same run), and the suites that start no server.
fronts_suites=(tests/runtime/test_hostile.py tests/runtime/test_load.py tests/runtime/test_streaming.py
  tests/runtime/test_batching.py tests/runtime/test_oip.py tests/runtime/test_routes.py tests/runtime/test_openai_routes.py
  tests/runtime/test_startup.py tests/runtime/test_held_head.py)
# Phase one (the parallel, e2e and fronts phases) runs far more busy processes than the machine has cores.
# There, torch's OpenMP threads wait for each other by spinning (GNU OpenMP's default), burning the CPU the
# other processes wait for: the llm example's model process used 81 CPU-s in a CI run for what takes 32 on
# an idle machine. PASSIVE makes a waiting thread sleep at once (docs/testing.md has the measurements).
# Phase one only: the serial phases time servers on an otherwise idle machine, as users run them, and
# nothing a test checks depends on how a thread waits. A value set by the caller is kept.
omp_wait_policy=${OMP_WAIT_POLICY-unset}
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
e2e_log=$(mktemp "${TMPDIR:-/tmp}/mlkit-e2e.XXXXXX")
trap 'kill "$sampler_pid" 2> /dev/null; rm -rf "$e2e_log" "$e2e_log.code" "$mypy_log" "$cpu_dir"' EXIT
(
  code=0
  phase "e2e phase ($e2e_workers workers, moto end to end, beside the parallel phase)" \
    -n "$e2e_workers" --dist loadgroup -m "e2e and not serial" "${e2e_paths[@]}" || code=$?
  fronts=0
  if [ "$subset" -eq 0 ]; then
    MLKIT_TEST_FRONTS=2 phase "fronts phase (the runtime's suites as two fronts and a model process, after the e2e phase)" \
      -m "not serial and not e2e" "${fronts_suites[@]}" || fronts=$?
  fi
  echo "$code $empty $fronts" > "$e2e_log.code"
) > "$e2e_log" 2>&1 &
e2e_pid=$!
parallel=0
phase "parallel phase ($workers workers, not serial, not e2e)" -n "$workers" --dist loadgroup -m "not serial and not e2e" "$@" || parallel=$?
wait "$e2e_pid" || true
cat "$e2e_log"
read -r e2e e2e_empty fronts < "$e2e_log.code" || { e2e=1; e2e_empty=0; fronts=1; }
rm -f "$e2e_log.code"
empty=$((empty + e2e_empty))
if [ "$omp_wait_policy" = unset ]; then unset OMP_WAIT_POLICY; else export OMP_WAIT_POLICY="$omp_wait_policy"; fi
alone=0
if [ "$subset" -eq 0 ]; then
  # Two serial tests side by side, then the rest one at a time. The known-cost bench tests measure a model
  # that sleeps (tests/commands/test_bench.py: three `mlkit bench` runs at once, about 75 s of wall and 8
  # CPU-s each) and already share the machine with each other; beside them runs the sentiment bench, whose
  # only timing promise is a recommendation within 150 s (about 75 s alone). One after the other they left
  # a core idle for a minute and a quarter of the serial phase.
  known_cost=(tests/commands/test_bench.py::test_three_runs_of_a_known_cost_agree
    tests/commands/test_bench.py::test_a_rate_over_what_a_replica_serves_fails_however_short_the_windows)
  beside=(tests/commands/test_bench.py::test_sentiment_prints_a_recommendation_in_about_a_minute)
  pair_log=$(mktemp "${TMPDIR:-/tmp}/mlkit-pair.XXXXXX")
  ( phase "known-cost bench phase (beside the sentiment bench)" -m serial "${known_cost[@]}" > "$pair_log" 2>&1; echo $? > "$pair_log.code" ) &
  pair_pid=$!
  phase "sentiment bench phase (beside the known-cost bench tests)" -m serial "${beside[@]}" || alone=$?
  wait "$pair_pid" || true
  cat "$pair_log"
  read -r pair < "$pair_log.code" || pair=1
  rm -f "$pair_log" "$pair_log.code"
  [ "$alone" -ne 0 ] || alone=$pair
  deselect=()
  for id in "${known_cost[@]}" "${beside[@]}"; do deselect+=(--deselect "$id"); done
  phase "serial phase (one at a time)" -m serial "${deselect[@]}" || { code=$?; [ "$alone" -ne 0 ] || alone=$code; }
else
  phase "serial phase (one at a time)" -m serial "$@" || alone=$?
fi
if [ "$subset" -eq 0 ]; then
  MLKIT_TEST_FRONTS=2 phase "fronts-serial phase (the runtime's serial tests as two fronts and a model process)" \
    -m serial "${fronts_suites[@]}" || { code=$?; [ "$alone" -ne 0 ] || alone=$code; }
fi
types=0
wait "$mypy_pid" || types=$?
if [ "$types" -ne 0 ]; then
  cat "$mypy_log" >&2
  echo "test.sh: mypy found problems (above)" >&2
  exit 1
fi
if [ "$empty" -eq 3 ]; then
  echo "test.sh: no test was collected in any phase: that is a failure, not a pass" >&2
  exit 1
fi
if [ "$parallel" -ne 0 ] || [ "$e2e" -ne 0 ] || [ "$fronts" -ne 0 ] || [ "$alone" -ne 0 ]; then
  echo "test.sh: parallel phase exit $parallel, e2e phase exit $e2e, fronts phase exit $fronts, serial phases exit $alone" >&2
  [ "$parallel" -ne 0 ] && exit "$parallel"
  [ "$e2e" -ne 0 ] && exit "$e2e"
  [ "$fronts" -ne 0 ] && exit "$fronts"
  exit "$alone"
fi
