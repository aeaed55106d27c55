"""The documentation site: it builds strictly (the reference pages generated from the code), and in
headless Chromium every internal link lands on a page and heading that exist, and search finds a spec
field on the spec reference page."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from mlkit.spec.reference import markdown
from tests.conftest import REPO
from tests.docs.site import Browser, broken_links, build, chromium_or_skip, search, served


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("site")
    built = build(dest)
    assert built.returncode == 0, built.stderr[-3000:]
    return dest


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    chrome = Browser(chromium_or_skip(), tmp_path_factory.mktemp("chromium-profile"))
    yield chrome
    chrome.close()


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")


def test_the_reference_pages_are_generated_from_the_code(site):
    spec = text_of((site / "reference/spec/index.html").read_text())
    for path in re.findall(r"^#### (.+)$", markdown(), re.M):
        assert path.strip("`") in spec, f"spec reference page lacks {path}"
    for field in re.findall(r"^\| `(\w+)` \|", markdown(), re.M):
        assert field in spec
    cli = text_of((site / "reference/cli/index.html").read_text())
    for command in ("mlkit init", "mlkit render", "mlkit apply", "mlkit job submit", "--check", "--forget-record"):
        assert command in cli, command
    routes = text_of((site / "reference/routes/index.html").read_text())
    for route in ("/predict", "/v2/models/{name}/infer", "/v1/chat/completions", "/readyz", "/metrics"):
        assert route in routes, route
    assert (site / "reference/openapi.json").stat().st_size > 1000


def test_troubleshooting_explains_every_error_class_the_code_has(site):
    """Every runtime status and CLI exit code that an error class carries is in the generated table and
    explained in the hand-written one (a new class without an explanation fails here)."""
    import mlkit.errors as cli_errors
    import mlkit_runtime.errors as runtime_errors

    page = text_of((site / "troubleshooting/index.html").read_text())
    source = (REPO / "docs/troubleshooting.md").read_text()
    for module, base, attr, row in ((cli_errors, cli_errors.MlkitError, "exit_code", "| {} |"), (runtime_errors, runtime_errors.HTTPError, "status", "| {} |")):
        for name in dir(module):
            cls = getattr(module, name)
            if isinstance(cls, type) and issubclass(cls, base):
                assert name in page, name
                assert row.format(getattr(cls, attr)) in source, f"docs/troubleshooting.md does not explain {getattr(cls, attr)} ({name})"


def test_a_broken_link_fails_the_strict_build(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(REPO / "docs", project / "docs")
    shutil.copy(REPO / "mkdocs.yml", project)
    (project / "scripts").mkdir()
    shutil.copy(REPO / "scripts/docs_reference.py", project / "scripts")
    page = project / "docs/guides/gpu.md"
    page.write_text(page.read_text() + "\nSee [the gone page](no-such-page.md).\n")
    built = build(tmp_path / "site", project / "mkdocs.yml")
    assert built.returncode != 0
    assert "no-such-page.md" in built.stderr


def test_every_internal_link_resolves_in_chromium(site, browser):
    with served(site) as base:
        assert broken_links(browser, base) == []
        assert browser.open(base + "guides/gpu/") == 200  # the crawl reached the guides


def test_the_link_check_fails_on_a_broken_link(site, browser, tmp_path):
    """The same check on a copy of the site with one link and one fragment broken: both are reported."""
    copy = tmp_path / "site"
    shutil.copytree(site, copy)
    page = copy / "guides/gpu/index.html"
    html = page.read_text()
    html = html.replace("<article", '<a href="../no-such-page/">gone</a><a href="../tpu/#no-such-heading">gone too</a><article', 1)
    page.write_text(html)
    with served(copy) as base:
        problems = broken_links(browser, base)
    assert problems == [
        f"{base}guides/gpu/ -> {base}guides/no-such-page/ (404)",
        f"{base}guides/gpu/ -> {base}guides/tpu/#no-such-heading (no element with id 'no-such-heading')",
    ]


def test_search_finds_a_spec_field_on_the_spec_reference(site, browser):
    with served(site) as base:
        for field in ("target_in_flight", "node_provisioning"):
            results = search(browser, base, field)
            assert any(r.startswith(base + "reference/spec/") for r in results), (field, results)
        assert search(browser, base, "xqzzyv") == []  # and an unknown word finds nothing
