"""The README is a front page that stays true, and the docs it points at exist. The spec reference is
generated from the models when the site is built (tests/docs/test_site.py checks the built pages)."""

from __future__ import annotations

import re
import subprocess
import sys

from mlkit.spec.reference import markdown
from tests.conftest import REPO

README = REPO / "README.md"


def test_every_spec_field_has_a_description():
    assert "|  |" not in markdown().replace("| --- |", "")


def test_the_readme_is_a_front_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; it is a front page (at most 150): move the content to a page under docs/"


def test_the_readme_keeps_the_two_quick_start_commands():
    """.ci/run and users rely on them: exactly these commands, in the quick start's code block."""
    block = README.read_text().split("## Quick start", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in block.strip().splitlines()] == ["bash scripts/quickstart.sh", "bash scripts/test.sh"]
    assert (REPO / "scripts/quickstart.sh").exists() and (REPO / "scripts/test.sh").exists()
    assert "scripts/test.sh" in (REPO / ".ci/run").read_text()


def test_the_readme_example_spec_validates(tmp_path):
    (spec,) = re.findall(r"```yaml\n(.*?)```", README.read_text(), re.S)
    assert len(spec.splitlines()) <= 12
    (tmp_path / "mlkit.yaml").write_text(spec)
    predictor = "class Predictor:\n    def __init__(self, config, model_dir): ...\n\n    def predict(self, payload):\n        return payload\n"
    (tmp_path / "predictor.py").write_text(predictor)
    (tmp_path / "model").mkdir()
    (tmp_path / "model/weights.txt").write_text("w")
    done = subprocess.run([sys.executable, "-m", "mlkit", "validate"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_the_readme_links_into_the_docs_and_every_link_exists():
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text())
    local = [t for t in targets if not t.startswith(("http://", "https://"))]
    assert len([t for t in local if t.startswith("docs/")]) >= 20
    missing = sorted(t for t in local if not (REPO / t).exists())
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_every_docs_page_is_in_the_site_navigation():
    """A page outside the nav is found by nobody; mkdocs only warns of it, so say so here by name."""
    nav = (REPO / "mkdocs.yml").read_text()
    pages = sorted(p.relative_to(REPO / "docs").as_posix() for p in (REPO / "docs").rglob("*.md"))
    assert not [p for p in pages if f": {p}\n" not in nav], "docs pages missing from mkdocs.yml's nav"


def test_architecture_names_only_what_the_repository_has():
    """docs/architecture.md is the map of the code: every path it names exists, and it points at nothing outside."""
    text = (REPO / "docs/architecture.md").read_text()
    assert "../" not in text, "docs/architecture.md points outside the repository"
    named = set(re.findall(r"`((?:cli|runtime|templates|terraform|tests|benchmarks|examples|docs|scripts)/[\w./<>-]*)`", text))
    assert len(named) > 20
    missing = sorted(p for p in named if "<" not in p and not (REPO / p).exists())
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"
