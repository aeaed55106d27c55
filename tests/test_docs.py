"""The README's spec reference is generated from the models, so it cannot drift."""

from __future__ import annotations

import re

from mlkit.spec.reference import markdown
from tests.conftest import REPO


def test_readme_spec_reference_is_current():
    readme = (REPO / "README.md").read_text()
    found = re.search(r"<!-- spec-reference:start -->\n(.*)<!-- spec-reference:end -->", readme, re.S)
    assert found, "README.md lost its spec-reference markers"
    assert found.group(1) == markdown(), "README spec reference is stale: paste `mlkit schema --format markdown` between the markers"


def test_every_spec_field_has_a_description():
    assert "|  |" not in markdown().replace("| --- |", "")


def test_architecture_names_only_what_the_repository_has():
    """docs/architecture.md is the map of the code: every path it names exists, and it points at nothing outside."""
    text = (REPO / "docs/architecture.md").read_text()
    assert "../" not in text, "docs/architecture.md points outside the repository"
    named = set(re.findall(r"`((?:cli|runtime|templates|terraform|tests|benchmarks|examples|docs|scripts)/[\w./<>-]*)`", text))
    assert len(named) > 20
    missing = sorted(p for p in named if "<" not in p and not (REPO / p).exists())
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"
