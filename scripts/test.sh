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

set +e
.venv/bin/python -m pytest "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure, not a pass" >&2
  exit 1
fi
exit "$code"
