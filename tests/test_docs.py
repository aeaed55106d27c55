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
