"""Cloud facts live in cli/clouds/: nowhere else in the `mlkit` package is the cloud's name compared
(`spec.cloud == "aws"`, `!=`, `in`, a `match`), or used to pick from a table of its own (`TABLE[spec.cloud]`,
`TABLE[cloud]`),
so that a third cloud is a module in cli/clouds/ (and its templates), not an edit of every rule.

Read from the source with `ast`. What counts as the cloud's name: an attribute named `cloud` (`spec.cloud`,
`self.cloud`), and the string literals "aws" and "gcp" in a comparison or a `case`."""

from __future__ import annotations

import ast

from tests.conftest import REPO

CLI = REPO / "cli"
CLOUD_NAMES = {"aws", "gcp"}


def _names_the_cloud(node: ast.AST) -> bool:
    if isinstance(node, ast.Attribute) and node.attr == "cloud":
        return True
    if isinstance(node, ast.Constant) and node.value in CLOUD_NAMES:
        return True
    return isinstance(node, (ast.Tuple, ast.List, ast.Set)) and any(_names_the_cloud(e) for e in node.elts)


def branches(source: str) -> list[tuple[int, str]]:
    """(line, code) of every comparison of, match on, or table lookup by the cloud's name in `source`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and any(_names_the_cloud(side) for side in (node.left, *node.comparators)):
            found.append(node)
        elif isinstance(node, ast.Match) and (_names_the_cloud(node.subject) or any(
            isinstance(c.pattern, ast.MatchValue) and _names_the_cloud(c.pattern.value) for c in node.cases
        )):
            found.append(node)
        elif isinstance(node, ast.Subscript) and (
            (isinstance(node.slice, ast.Attribute) and node.slice.attr == "cloud") or (isinstance(node.slice, ast.Name) and node.slice.id == "cloud")
        ):
            found.append(node)
    return sorted((n.lineno, ast.get_source_segment(source, n) or "") for n in found)


def test_the_cloud_is_compared_only_in_cli_clouds():
    outside = [p for p in sorted(CLI.rglob("*.py")) if CLI / "clouds" not in p.parents]
    assert len(outside) > 50  # the walk saw the package
    found = [f"{p.relative_to(REPO)}:{line}: {code}" for p in outside for line, code in branches(p.read_text(encoding="utf-8"))]
    assert not found, "the cloud's name is compared outside cli/clouds/ (ask clouds.of(spec) instead):\n" + "\n".join(found)


def test_the_check_sees_each_form():
    source = '''
if spec.cloud == "aws": pass
if "gcp" != name: pass
ok = cloud in ("aws", "x")
scheme = SCHEMES[spec.cloud]
word = WORDS[cloud]
match spec.cloud:
    case _: pass
match other:
    case "gcp": pass
fine = spec.cloud.upper() + cloud_name
'''
    assert [line for line, _ in branches(source)] == [2, 3, 4, 5, 6, 7, 9]
