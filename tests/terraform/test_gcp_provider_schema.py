"""Every rendered GCP resource and data source checked against the google provider's schema, the way
`terraform validate` would check it (the provider itself cannot be installed here).

The schema is test data: tests/terraform/data/gcp_provider/schema-<tag>.json, extracted by
extract.py beside it from hashicorp/terraform-provider-google at the oldest and newest releases the
templates' pin (>= 6.0, < 8.0) admits, v6.0.0 and v7.45.0: a rendered block must be valid on both. Checked: unknown
arguments and block types, an attribute written as a block or a block as an attribute, read-only
(computed) attributes set, required arguments and blocks missing, more blocks than max_items,
literal values outside a documented enum, and ConflictsWith / ExactlyOneOf between literal arguments.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import hcl2
import pytest

from mlkit.render import infra
from mlkit.spec.loader import loads
from tests.conftest import EXAMPLE_NAMES, EXAMPLES

DATA = Path(__file__).parent / "data/gcp_provider"
SCHEMAS = {p.stem.removeprefix("schema-"): json.loads(p.read_text()) for p in sorted(DATA.glob("schema-v*.json"))}
NEWEST = max(SCHEMAS, key=lambda v: tuple(int(x) for x in v.lstrip("v").split(".")))
RESOURCE_META = {"count", "for_each", "provider", "depends_on", "lifecycle", "provisioner", "connection", "timeouts"}
DATA_META = {"count", "for_each", "provider", "depends_on", "lifecycle"}

GCP_EXAMPLES = [n for n in EXAMPLE_NAMES if "cloud: gcp" in (EXAMPLES / n / "mlkit.yaml").read_text()]
BASE = "project: acme\ncloud: gcp\nregion: europe-west4\ngcp_project: acme-prod\n"
POOLS = ("  node_pools:\n    - {name: cpu, instance_type: e2-standard-4}\n"
         "    - {name: v6e, tpu: {version: v6e, topology: 4x4}, max_nodes: 4, zones: [europe-west4-a]}\n")
APIS = "apis:\n  - {name: a, predictor: p.py:P, expose: public, canary: {weight: 10}}\n"
# Spec variants that change what the GCP templates render, beside the examples.
VARIANTS = {
    "existing-network-gcs-state": BASE
    + "state: {backend: gcs, bucket: acme-tf}\nnetwork: {existing_network: shared, existing_subnetwork: gke}\ncluster:\n"
    + POOLS
    + APIS,
    "zonal-private-endpoint": BASE + "network: {nat: none}\ncluster:\n  zone: europe-west4-a\n"
                                     "  endpoint_public_access: false\n  public_access_cidrs: [10.0.0.0/8]\n" + POOLS,
    "existing-cluster-by-name": BASE + "cluster:\n  existing: {name: shared}\n" + APIS,
    "existing-cluster-by-context": BASE + "cluster:\n  existing: {context: gke_acme}\n",
    # An async API: its Pub/Sub queue module, its own account and KEDA's account in the add-ons stack.
    "async-api": BASE + "cluster:\n" + POOLS + "apis:\n  - {name: v, kind: async, predictor: p.py:P, queue: {max_attempts: 5}}\n",
}


def rendered_files(spec_text: str) -> dict[str, str]:
    return {path: text for path, text in infra.render(loads(spec_text)).items() if path.endswith(".tf")}


def example_text(name: str) -> str:
    return (EXAMPLES / name / "mlkit.yaml").read_text()


def unquote(value):
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


# python-hcl2 7+ marks block bodies; older versions give blocks and lists of objects the same shape,
# and none of the rendered arguments is a list of objects, so a list of dicts is then taken as blocks.
MARKS_BLOCKS = "__is_block__" in json.dumps(hcl2.loads("a {\n}\n"))


def is_block(value) -> bool:
    if not (isinstance(value, list) and value and all(isinstance(v, dict) for v in value)):
        return False
    return all(v.get("__is_block__") for v in value) if MARKS_BLOCKS else True


def literal(value) -> bool:
    return isinstance(value, (str, int, float, bool)) and not (isinstance(value, str) and "${" in value)


def literal_at(root: dict, path: str) -> bool:
    """Whether a ConflictsWith path ("a.0.b", from the resource's root) is written in literal blocks."""
    node = root
    for part in path.split("."):
        if part.isdigit():
            continue
        if isinstance(node, list):
            node = node[0] if node else {}
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def check_body(body: dict, schema: dict, where: str, meta: frozenset[str] = frozenset(), root: dict | None = None) -> list[str]:
    """The errors `terraform validate` would report for one block body against its schema."""
    if schema.get("open"):
        return []
    root = root if root is not None else body
    attributes, blocks = schema["attributes"], schema["blocks"]
    errors: list[str] = []
    present: dict[str, int | None] = {}  # block name -> literal count (None when a dynamic block makes it unknown)
    for raw_key, value in body.items():
        key = unquote(raw_key)
        if key in ("__is_block__", "__comments__", "__inline_comments__") or key in meta:
            continue
        if key == "dynamic":
            for entry in value:
                for raw_name, dyn in entry.items():
                    name = unquote(raw_name)
                    if name not in blocks:
                        errors.append(f"{where}: Unsupported block type: dynamic \"{name}\"")
                        continue
                    present[name] = None
                    for content in dyn.get("content", []):
                        errors += check_body(content, blocks[name]["block"], f"{where}.{name}", root=root)
            continue
        if key in attributes:
            spec = attributes[key]
            if is_block(value):
                errors.append(f"{where}: Unsupported block type: {key} is an argument (write {key} = ...)")
            elif not (spec.get("optional") or spec.get("required")):
                errors.append(f"{where}: Invalid or unknown key / unconfigurable attribute: {key} is read-only")
            elif "enum" in spec and literal(value) and unquote(value) not in spec["enum"]:
                errors.append(f"{where}: expected {key} to be one of {spec['enum']}, got {unquote(value)}")
            continue
        if key in blocks:
            if not is_block(value):
                errors.append(f"{where}: Unsupported argument: {key} is a block (write {key} {{ ... }})")
                continue
            present[key] = len(value)
            for item in value:
                errors += check_body(item, blocks[key]["block"], f"{where}.{key}", root=root)
            continue
        errors.append(f"{where}: Unsupported argument or block type: {key}")
    written = {unquote(k) for k in body} - {"dynamic"}
    for name, spec in attributes.items():
        if spec.get("required") and name not in written:
            errors.append(f"{where}: Missing required argument: {name}")
        for other in spec.get("conflicts_with", []):
            if name in written and literal_at(root, other):
                errors.append(f"{where}: {name} conflicts with {other}")
    for name, spec in blocks.items():
        count = present.get(name, 0)
        if (spec.get("required") or spec.get("min_items", 0) > 0) and name not in present:
            errors.append(f"{where}: Insufficient {name} blocks: at least {max(1, spec.get('min_items', 0))} required")
        if count is not None and "max_items" in spec and count > spec["max_items"]:
            errors.append(f"{where}: Too many {name} blocks: no more than {spec['max_items']} allowed")
    for name, spec in {**attributes, **blocks}.items():
        group = [g for g in spec.get("exactly_one_of", []) if "." not in g]
        if group and name == group[0] and group == spec["exactly_one_of"]:
            given = [g for g in group if g in written or (g in present)]
            if len(given) != 1:
                errors.append(f"{where}: exactly one of {group} must be given (got {given or 'none'})")
    return errors


def check_file(path: str, text: str, version: str = NEWEST) -> tuple[list[str], set[str]]:
    schema = SCHEMAS[version]
    parsed = hcl2.loads(text)
    errors, seen = [], set()
    for entry in parsed.get("provider", []):
        for raw_name, body in entry.items():
            if unquote(raw_name) == "google":
                seen.add("provider.google")
                errors += check_body(body, schema["provider_config"]["block"], f"{path}: provider google ({version})", frozenset({"alias", "version"}))
    for kind, catalogue, meta in (("resource", schema["resources"], RESOURCE_META), ("data", schema["data_sources"], DATA_META)):
        for entry in parsed.get(kind, []):
            for raw_type, named in entry.items():
                rtype = unquote(raw_type)
                if not rtype.startswith("google_"):
                    continue
                seen.add(f"{kind}.{rtype}")
                for raw_name, body in named.items():
                    where = f"{path}: {kind} {rtype}.{unquote(raw_name)} (google {version})"
                    if rtype not in catalogue:
                        errors.append(f"{where}: not in the schema test data; add it to extract.py and regenerate schema.json")
                        continue
                    errors += check_body(body, catalogue[rtype]["block"], where, frozenset(meta))
    return errors, seen


CASES = {f"example-{n}": example_text(n) for n in GCP_EXAMPLES} | VARIANTS


@pytest.mark.parametrize("version", sorted(SCHEMAS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_rendered_gcp_block_matches_the_provider_schema(case, version):
    files = rendered_files(CASES[case])
    assert files
    errors = []
    for path, text in sorted(files.items()):
        errors += check_file(path, text, version)[0]
    assert errors == []


def test_the_cases_cover_every_google_type_in_the_schema_data():
    """The schema data holds exactly what mlkit renders: nothing checked is missing, nothing kept is unused."""
    seen: set[str] = set()
    for text in CASES.values():
        for path, content in rendered_files(text).items():
            seen |= check_file(path, content)[1]
    for schema in SCHEMAS.values():
        kept = {f"resource.{r}" for r in schema["resources"]} | {f"data.{d}" for d in schema["data_sources"]} | {"provider.google"}
        assert seen == kept


def test_the_schema_data_names_its_source_and_spans_the_pinned_range():
    versions = rendered_files(example_text(GCP_EXAMPLES[0]))["infra/terraform/cluster/versions.tf"]
    pin = re.search(r'source\s*=\s*"hashicorp/google"\s*version\s*=\s*">= ([0-9]+\.[0-9]+), < ([0-9]+)\.0"', versions)
    assert pin, versions
    for version, schema in SCHEMAS.items():
        provider = schema["provider"]
        assert provider["repository"] == "hashicorp/terraform-provider-google" and provider["version"] == version
        assert re.fullmatch(r"[0-9a-f]{40}", provider["commit"])
    # The oldest release the pin admits is kept, and the newest kept is inside the pin.
    assert f"v{pin.group(1)}.0" in SCHEMAS
    assert int(NEWEST.lstrip("v").split(".")[0]) < int(pin.group(2))


def _module(name: str) -> tuple[str, str]:
    path = f"infra/terraform/cluster/modules/{name}/main.tf"
    return path, rendered_files(example_text("gcp-tpu-v5e"))[path]


def test_conflicting_arguments_are_caught():
    # Autopilot manages nodes itself; the provider declares shielded nodes and friends conflicting with it.
    path, text = _module("gke")
    shielded = "  enable_shielded_nodes       = true\n"
    errors = check_file(path, text.replace(shielded, shielded + "  enable_autopilot            = true\n"))[0]
    assert any("enable_shielded_nodes conflicts with enable_autopilot" in e for e in errors), errors


@pytest.mark.parametrize(
    "old, new, expected",
    [
        # An argument the provider does not have (a typo of disk_type).
        (
            "    disk_type       = var.disk_type\n",
            "    disk_type       = var.disk_type\n    boot_disk_type  = var.disk_type\n",
            "Unsupported argument or block type: boot_disk_type",
        ),
        # A read-only attribute.
        ("  project        = var.project_id\n", "  project        = var.project_id\n  instance_group_urls = []\n", "instance_group_urls is read-only"),
        # A literal outside the enum.
        (
            '    location_policy = local.multi_host ? "ANY" : null\n',
            '    location_policy = "EVERYWHERE"\n',
            "expected location_policy to be one of ['BALANCED', 'ANY'], got EVERYWHERE",
        ),
        # A required argument missing.
        ("  cluster        = var.cluster\n", "", "Missing required argument: cluster"),
        # A block written as an argument, and an argument written as a block.
        ("  management {\n    auto_repair  = true\n    auto_upgrade = true\n  }\n", "  management = { auto_repair = true }\n", "management is a block"),
        ("    machine_type    = var.machine_type\n", "    machine_type {\n      name = var.machine_type\n    }\n", "machine_type is an argument"),
        # More blocks than max_items.
        ("  management {\n", "  management {\n    auto_repair = true\n  }\n\n  management {\n", "Too many management blocks: no more than 1 allowed"),
    ],
)
def test_a_deliberately_wrong_block_is_caught(old, new, expected):
    path, text = _module("node-pool")
    assert check_file(path, text)[0] == []
    assert old in text, old
    errors = check_file(path, text.replace(old, new, 1))[0]
    assert any(expected in e for e in errors), errors


def test_exactly_one_of_allow_or_deny_on_a_firewall():
    path, text = _module("gke")
    broken = text.replace('  allow {\n    protocol = "tcp"\n    ports    = ["6443", "9443"]\n  }\n', "")
    assert broken != text
    errors = check_file(path, broken)[0]
    assert any("exactly one of ['allow', 'deny'] must be given (got none)" in e for e in errors), errors


def test_a_wrong_provider_argument_is_caught():
    files = rendered_files(example_text("gcp-l4"))
    path = "infra/terraform/cluster/main.tf"
    text = files[path].replace("  default_labels = local.labels\n", "  default_labels = local.labels\n  zone_default   = var.region\n")
    errors = check_file(path, text)[0]
    assert any("provider google" in e and "Unsupported argument or block type: zone_default" in e for e in errors), errors
