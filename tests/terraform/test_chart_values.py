"""Every value the add-ons stacks hand a chart is a key of that chart's values.yaml at the pinned version.

Helm ignores an unknown key without a word, so a renamed key (a chart's new major, a typo) would leave
the default in place and nothing would fail until a pod misbehaved. `data/charts/*.json` holds the key
paths of each pinned chart's values.yaml, extracted from the chart's source at that version (noted in
each file). A pin that changes without its data fails here, so both change in the same commit.
"""

from __future__ import annotations

import json
from pathlib import Path

import hcl2
import pytest

from mlkit.render.infra import render
from mlkit.spec.loader import load
from tests.conftest import EXAMPLES
from tests.terraform.test_gcp_static import plain

CHARTS = Path(__file__).parent / "data" / "charts"
# One example per cloud that renders every helm_release of its stack (the `count` toggles stay in HCL).
STACKS = {"aws": "aws-accelerators", "gcp": "gcp-l4"}


def chart_data() -> dict[str, dict]:
    return {d["chart"]: d for d in (json.loads(p.read_text()) for p in sorted(CHARTS.glob("*.json")))}


def path_key(parts: tuple[str, ...]) -> str:
    return ".".join(parts) if not any("." in p for p in parts) else json.dumps(list(parts))


def value_paths(node, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Key paths of a values object: every map key, not descending into lists (Helm replaces lists whole)."""
    out = []
    for key, value in node.items():
        path = prefix + (str(key),)
        out.append(path)
        if isinstance(value, dict):
            out += value_paths(value, path)
    return out


def yamlencode_object(expression: str) -> dict:
    """`${yamlencode({...})}` as python-hcl2 leaves it, read back as HCL into a dict."""
    inner = expression.strip()
    assert inner.startswith("${yamlencode(") and inner.endswith(")}"), expression[:80]
    return plain(hcl2.loads("v = " + inner[len("${yamlencode(") : -2] + "\n")["v"])


def releases(example: str) -> dict[str, dict]:
    files = render(load(EXAMPLES / example / "mlkit.yaml"))
    out = {}
    for rel, text in files.items():
        if rel.startswith("infra/terraform/addons/") and rel.count("/") == 3 and rel.endswith(".tf"):
            for block in plain(hcl2.loads(text)).get("resource", []):
                out.update(block.get("helm_release", {}))
    return out


def set_keys(body: dict) -> list[tuple[str, ...]]:
    """Keys of `set` blocks: Helm's --set syntax, where `\\.` keeps a dot inside one key."""
    out = []
    for block in body.get("set", []):
        name = block["name"].replace("\\\\.", "\0").replace("\\.", "\0")
        out.append(tuple(part.replace("\0", ".") for part in name.split(".")))
    return out


def unknown_keys(paths: list[tuple[str, ...]], data: dict) -> list[str]:
    known = set(data["keys"])
    open_maps = set(data["open"]) | set(data.get("open_documented", {}))
    bad = []
    for path in paths:
        if path_key(path) in known:
            continue
        if any(path_key(path[:i]) in open_maps for i in range(1, len(path))):
            continue
        bad.append(path_key(path))
    return bad


@pytest.mark.parametrize("cloud", sorted(STACKS))
def test_every_value_key_exists_in_the_pinned_chart(cloud):
    data = chart_data()
    charts = releases(STACKS[cloud])
    assert charts
    for release, body in charts.items():
        chart = body["chart"]
        assert chart in data, f"{release}: no values data for chart {chart} under {CHARTS}"
        assert body["version"] == data[chart]["version"], (
            f"{release}: pinned {body['version']} but {chart}.json describes {data[chart]['version']}; extract the keys at the new pin"
        )
        paths = [p for expression in body.get("values", []) for p in value_paths(yamlencode_object(expression))]
        paths += set_keys(body)
        assert not unknown_keys(paths, data[chart]), f"{release} ({chart} {body['version']}) sets keys its values.yaml lacks"


def test_values_are_actually_read():
    """The check sees the keys the stacks set, so a misspelt one would fail."""
    aws = releases(STACKS["aws"])
    autoscaler = [p for e in aws["cluster_autoscaler"]["values"] for p in value_paths(yamlencode_object(e))]
    assert ("autoDiscovery", "clusterName") in autoscaler and ("extraArgs", "expander") in autoscaler
    data = chart_data()
    assert unknown_keys(autoscaler, data["cluster-autoscaler"]) == []
    assert unknown_keys([("autoDiscovery", "clustername")], data["cluster-autoscaler"]) == ["autoDiscovery.clustername"]
    assert unknown_keys([("serviceAccount", "annotations", "eks.amazonaws.com/role-arn")], data["aws-load-balancer-controller"]) == []
    assert unknown_keys([("server", "retentionTime")], data["prometheus"]) == ["server.retentionTime"]
    assert set_keys({"set": [{"name": "a\\.b.c"}]}) == [("a.b", "c")]


def test_every_chart_data_file_names_its_source():
    for chart, d in chart_data().items():
        assert {"repository", "path", "commit"} <= set(d["source"]), chart
        assert d["checked"] and d["keys"], chart
