"""Extract the google provider's schema for the resources and data sources mlkit's GCP stacks use,
from the provider's published Go source, into schema-<tag>.json beside this file.

    git clone https://github.com/hashicorp/terraform-provider-google && cd terraform-provider-google
    python tests/terraform/data/gcp_provider/extract.py /path/to/terraform-provider-google v7.45.0

The provider defines each schema as Go composite literals (`map[string]*schema.Schema{...}`), spread
over variables and helper functions. This reads just enough Go to follow those: literals, `&x{...}`,
calls of schema helper functions, variable references and `MergeSchemas`. What it cannot follow is
recorded as an open block (`"open": true`), which the test then does not check inside.

Run it again whenever the provider pin in the templates moves, in the same commit.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

# Terraform type -> (Go source files, constructor function). Paths are relative to the provider root.
RESOURCES = {
    "google_compute_network": ("google/services/compute/resource_compute_network.go", "ResourceComputeNetwork"),
    "google_compute_subnetwork": ("google/services/compute/resource_compute_subnetwork.go", "ResourceComputeSubnetwork"),
    "google_compute_firewall": ("google/services/compute/resource_compute_firewall.go", "ResourceComputeFirewall"),
    "google_compute_router": ("google/services/compute/resource_compute_router.go", "ResourceComputeRouter"),
    "google_compute_router_nat": ("google/services/compute/resource_compute_router_nat.go", "ResourceComputeRouterNat"),
    "google_service_account": ("google/services/resourcemanager/resource_google_service_account.go", "ResourceGoogleServiceAccount"),
    "google_container_cluster": ("google/services/container/resource_container_cluster.go", "ResourceContainerCluster"),
    "google_container_node_pool": ("google/services/container/resource_container_node_pool.go", "ResourceContainerNodePool"),
    "google_artifact_registry_repository": (
        "google/services/artifactregistry/resource_artifact_registry_repository.go",
        "ResourceArtifactRegistryRepository",
    ),
    "google_storage_bucket": ("google/services/storage/resource_storage_bucket.go", "ResourceStorageBucket"),
    "google_pubsub_topic": ("google/services/pubsub/resource_pubsub_topic.go", "ResourcePubsubTopic"),
    "google_pubsub_subscription": ("google/services/pubsub/resource_pubsub_subscription.go", "ResourcePubsubSubscription"),
    # Only for the data source below (its number names Pub/Sub's service agent); mlkit creates no project.
    "google_project": ("google/services/resourcemanager/resource_google_project.go", "ResourceGoogleProject"),
}
# Resources read only to derive their data source, left out of the output.
DATA_ONLY = {"google_project"}
# IAM members: tpgiamresource.ResourceIamMember(<parent schema>, ...) merges IamMemberBaseSchema with it.
IAM_MEMBERS = {
    "google_project_iam_member": ("google/services/resourcemanager/iam_project.go", "IamProjectSchema"),
    "google_service_account_iam_member": ("google/services/resourcemanager/iam_service_account.go", "IamServiceAccountSchema"),
    "google_storage_bucket_iam_member": ("google/services/storage/iam_storage_bucket.go", "StorageBucketIamSchema"),
    "google_pubsub_topic_iam_member": ("google/services/pubsub/iam_pubsub_topic.go", "PubsubTopicIamSchema"),
    "google_pubsub_subscription_iam_member": ("google/services/pubsub/iam_pubsub_subscription.go", "IamPubsubSubscriptionSchema"),
}
IAM_BASE = ("google/tpgiamresource/resource_iam_member.go", "IamMemberBaseSchema")
# The provider block's own arguments (the SDK provider; the framework provider muxed with it must
# declare the same schema).
PROVIDER = ("google/provider/provider.go", "Provider")
# Files whose helpers and variables the schemas above refer to.
SHARED = [
    "google/services/container/node_config.go",
    "google/tpgresource/utils.go",
]
# Data sources built from a resource's schema (DatasourceSchemaFromResourceSchema): everything
# computed, then the named fields made required or optional.
DERIVED_DATA_SOURCES = {
    "google_container_cluster": ("google/services/container/data_source_google_container_cluster.go", "google_container_cluster"),
    "google_project": ("google/services/resourcemanager/data_source_google_project.go", "google_project"),
}
# Plugin-framework data sources: attributes read from `"name": schema.XAttribute{...}`.
FRAMEWORK_DATA_SOURCES = {
    "google_client_config": "google/services/resourcemanager/data_source_google_client_config.go",
}

TOKEN = re.compile(
    r"""(?P<ws>\s+)|(?P<comment>//[^\n]*|/\*.*?\*/)|(?P<raw>`[^`]*`)|(?P<str>"(?:\\.|[^"\\])*")|(?P<rune>'(?:\\.|[^'\\])+')"""
    r"""|(?P<word>[A-Za-z_0-9][A-Za-z_0-9.]*)|(?P<op>:=|\.\.\.|&&|\|\||==|!=|<=|>=|[{}()\[\],:&*=;!<>|+\-/%.^])""",
    re.S,
)
CLOSE = {"{": "}", "(": ")", "[": "]"}


class Group(list):
    def __init__(self, opener: str):
        super().__init__()
        self.opener = opener


def tokenize(text: str) -> Group:
    root, stack = Group(""), []
    current = root
    for m in TOKEN.finditer(text):
        kind = m.lastgroup
        if kind in ("ws", "comment"):
            continue
        value = m.group()
        if kind == "op" and value in CLOSE:
            stack.append(current)
            group = Group(value)
            current.append(group)
            current = group
        elif kind == "op" and value in CLOSE.values():
            current = stack.pop()
        else:
            current.append((kind, value))
    return root


def split_commas(group: Group) -> list[list]:
    parts, part = [], []
    for item in group:
        if item == ("op", ","):
            parts.append(part)
            part = []
        else:
            part.append(item)
    if part:
        parts.append(part)
    return parts


def is_word(item, value: str | None = None) -> bool:
    return isinstance(item, tuple) and item[0] == "word" and (value is None or item[1] == value)


def is_group(item, opener: str) -> bool:
    return isinstance(item, Group) and item.opener == opener


class Source:
    """Top-level `var NAME = ...` and `func NAME(...) ... { ... }` of the files read."""

    def __init__(self):
        self.vars: dict[str, list] = {}
        self.funcs: dict[str, Group] = {}

    def add(self, text: str) -> None:
        items = tokenize(text)
        i = 0
        while i < len(items):
            item = items[i]
            if is_word(item, "var") and i + 1 < len(items) and is_group(items[i + 1], "("):  # var ( a = ...; b = ... )
                group, j = items[i + 1], 0
                while j + 2 < len(group):
                    if is_word(group[j]) and group[j + 1] == ("op", "="):
                        name = group[j][1]
                        self.vars[name], j = take_expr(group, j + 2)
                    else:
                        j += 1
                i += 2
            elif is_word(item, "var") and i + 2 < len(items) and is_word(items[i + 1]) and items[i + 2] == ("op", "="):
                expr, end = take_expr(items, i + 3)
                self.vars[items[i + 1][1]] = expr
                i = end
            elif is_word(item, "func") and i + 1 < len(items) and is_word(items[i + 1]):
                j = i + 2
                while j < len(items) and not is_group(items[j], "{"):
                    j += 1
                if j < len(items):
                    self.funcs[items[i + 1][1]] = items[j]
                i = j + 1
            else:
                i += 1


def take_expr(items: list, i: int) -> tuple[list, int]:
    """The tokens of one Go expression starting at i (operands joined by binary operators are not needed here)."""
    start = i
    if i < len(items) and items[i] == ("op", "&"):
        i += 1
    if i < len(items) and is_word(items[i], "func"):  # closure: func(...) result { body }
        i += 1
        while i < len(items) and not is_group(items[i], "{"):
            i += 1
        return items[start : i + 1], i + 1
    if i < len(items) and is_word(items[i], "map"):  # map[K]*V{...}
        i += 2
        while i < len(items) and not is_group(items[i], "{"):
            i += 1
        return items[start : i + 1], i + 1
    if i < len(items) and is_group(items[i], "["):  # []T{...}
        i += 1
        while i < len(items) and not is_group(items[i], "{"):
            i += 1
        return items[start : i + 1], i + 1
    i += 1
    while i < len(items) and (is_group(items[i], "(") or is_group(items[i], "{")):
        i += 1
    return items[start:i], i


def strings_in(group) -> list[str]:
    out = []
    for item in group:
        if isinstance(item, Group):
            out += strings_in(item)
        elif item[0] == "str":
            out.append(json.loads(item[1]))
    return out


class Extractor:
    def __init__(self, source: Source):
        self.source = source

    def schema_map(self, expr: list, depth: int = 0) -> dict | None:
        """A `map[string]*schema.Schema` expression -> {name: field}; None when it cannot be followed."""
        if depth > 40 or not expr:
            return None
        head = expr[0]
        if is_word(head, "map") and is_group(expr[-1], "{"):
            out = {}
            for part in split_commas(expr[-1]):
                if len(part) >= 3 and isinstance(part[0], tuple) and part[0][0] == "str" and part[1] == ("op", ":"):
                    out[json.loads(part[0][1])] = self.field(part[2:], depth + 1)
            return out
        if is_word(head) and head[1].endswith("MergeSchemas") and len(expr) > 1 and is_group(expr[1], "("):
            out = {}
            for part in split_commas(expr[1]):
                merged = self.schema_map(part, depth + 1)
                if merged is None:
                    return None
                out.update(merged)
            return out
        if is_word(head) and len(expr) == 1 and head[1] in self.source.vars:
            return self.schema_map(self.source.vars[head[1]], depth + 1)
        if is_word(head) and len(expr) == 2 and is_group(expr[1], "(") and head[1].split(".")[-1] in self.source.funcs:
            returned = self.returned(head[1].split(".")[-1])
            return self.schema_map(returned, depth + 1) if returned else None
        return None

    def returned(self, func: str) -> list | None:
        body = self.source.funcs[func]
        for i, item in enumerate(body):
            if is_word(item, "return"):
                expr, _ = take_expr(body, i + 1)
                if len(expr) == 1 and is_word(expr[0]):  # x := helper(); (adjust x); return x
                    for j in range(len(body) - 2):
                        if body[j] == expr[0] and body[j + 1] == ("op", ":="):
                            return take_expr(body, j + 2)[0]
                return expr
        return None

    def literal_fields(self, group: Group) -> dict[str, list]:
        fields = {}
        for part in split_commas(group):
            if len(part) >= 3 and is_word(part[0]) and part[1] == ("op", ":"):
                fields[part[0][1]] = part[2:]
        return fields

    def field(self, expr: list, depth: int) -> dict:
        """One `*schema.Schema` (a `{...}` literal, `&schema.Schema{...}`, a helper call or a variable)."""
        if expr and expr[0] == ("op", "&"):
            expr = expr[1:]
        if len(expr) == 1 and is_group(expr[0], "{"):
            return self.from_literal(self.literal_fields(expr[0]), depth)
        if len(expr) == 2 and is_word(expr[0]) and is_group(expr[1], "{"):
            return self.from_literal(self.literal_fields(expr[1]), depth)
        name = expr[0][1].split(".")[-1] if expr and is_word(expr[0]) else ""
        if len(expr) == 1 and name in self.source.vars:
            return self.field(self.source.vars[name], depth + 1)
        if len(expr) == 2 and is_group(expr[1], "(") and name in self.source.funcs:
            returned = self.returned(name)
            if returned:
                return self.field(returned, depth + 1)
        if name == "DeletionPolicySchemaEntry":  # tpgresource: an optional string with a default
            return {"kind": "attribute", "type": "string", "optional": True}
        return {"kind": "attribute", "type": "unknown", "optional": True, "open": True}

    def from_literal(self, f: dict[str, list], depth: int) -> dict:
        def flag(name: str) -> bool:
            return f.get(name) == [("word", "true")]

        go_type = f.get("Type", [("word", "")])[0][1].removeprefix("schema.Type").lower()
        out: dict = {}
        for key in ("Required", "Optional", "Computed"):
            if flag(key):
                out[key.lower()] = True
        if "MaxItems" in f:
            out["max_items"] = int(f["MaxItems"][0][1])
        if "MinItems" in f:
            out["min_items"] = int(f["MinItems"][0][1])
        for key, name in (("ConflictsWith", "conflicts_with"), ("ExactlyOneOf", "exactly_one_of")):
            value = f.get(key)
            if value and len(value) == 1 and is_word(value[0]) and value[0][1] in self.source.vars:
                value = self.source.vars[value[0][1]]  # a []string declared as a variable
            if value:
                out[name] = strings_in(value[-1]) if isinstance(value[-1], Group) else []
        # Enums: validation.StringInSlice([]string{...}, false) and verify.ValidateEnum([]string{...}).
        validate = f.get("ValidateFunc") or []
        if len(validate) > 1 and is_word(validate[0]) and validate[0][1].split(".")[-1] in ("StringInSlice", "ValidateEnum"):
            first = split_commas(validate[1])[0]
            enum = [s for item in first if is_group(item, "{") for s in strings_in(item)]
            if enum:
                out["enum"] = enum
        # A computed-only list of objects is read-only data, not a block a configuration can write.
        computed_only = flag("Computed") and not (flag("Optional") or flag("Required"))
        as_attr = f.get("ConfigMode") == [("word", "schema.SchemaConfigModeAttr")] or computed_only
        resource = self.resource_literal(f.get("Elem") or [], depth)
        if go_type in ("list", "set") and resource is not None and not as_attr:
            schema = self.schema_map(resource.get("Schema", []), depth + 1)
            block = {"kind": "block", "nesting": go_type, **out}
            block["block"] = schema_block(schema) if schema is not None else {"open": True}
            return block
        return {"kind": "attribute", "type": go_type or "unknown", **out}

    def resource_literal(self, expr: list, depth: int) -> dict[str, list] | None:
        """The fields of a `*schema.Resource` given inline, as a variable or as a helper's result."""
        if depth > 40 or not expr:
            return None
        if expr[0] == ("op", "&"):
            expr = expr[1:]
        if len(expr) == 2 and is_word(expr[0], "schema.Resource") and is_group(expr[1], "{"):
            return self.literal_fields(expr[1])
        name = expr[0][1].split(".")[-1] if is_word(expr[0]) else ""
        if len(expr) == 1 and name in self.source.vars:
            return self.resource_literal(self.source.vars[name], depth + 1)
        if len(expr) == 2 and is_group(expr[1], "(") and name in self.source.funcs:
            return self.resource_literal(self.returned(name) or [], depth + 1)
        return None

    def resource(self, func: str) -> dict:
        expr = self.returned(func)
        assert expr, f"{func}: no return"
        fields = self.literal_fields(expr[-1])
        schema = self.schema_map(fields["Schema"])
        assert schema is not None, f"{func}: Schema cannot be followed"
        return schema_block(schema)


def schema_block(schema: dict) -> dict:
    attributes = {k: {x: y for x, y in v.items() if x != "kind"} for k, v in sorted(schema.items()) if v["kind"] == "attribute"}
    blocks = {k: {x: y for x, y in v.items() if x != "kind"} for k, v in sorted(schema.items()) if v["kind"] == "block"}
    return {"attributes": attributes, "blocks": blocks}


def data_source_from_resource(resource: dict, text: str) -> dict:
    """DatasourceSchemaFromResourceSchema: every field computed; then AddRequired/AddOptionalFieldsToSchema."""
    fields = {name: {"type": spec.get("type", "unknown"), "computed": True} for name, spec in resource["attributes"].items()}
    fields |= {name: {"type": spec["nesting"], "computed": True} for name, spec in resource["blocks"].items()}
    for call, flag in (("AddRequiredFieldsToSchema", "required"), ("AddOptionalFieldsToSchema", "optional")):
        for m in re.finditer(call + r"\(dsSchema,([^)]*)\)", text):
            for name in re.findall(r'"([^"]+)"', m.group(1)):
                fields[name] = {"type": fields.get(name, {}).get("type", "string"), flag: True} | ({"computed": True} if flag == "optional" else {})
    return {"attributes": dict(sorted(fields.items())), "blocks": {}}


def framework_data_source(text: str) -> dict:
    fields = {}
    for m in re.finditer(r'"(\w+)":\s*schema\.(\w+)Attribute\{(.*?)\n\t\t\t\}', text, re.S):
        body = m.group(3)
        spec = {"type": m.group(2).lower()}
        for key in ("Required", "Optional", "Computed"):
            if re.search(key + r":\s*true", body):
                spec[key.lower()] = True
        fields[m.group(1)] = spec
    return {"attributes": dict(sorted(fields.items())), "blocks": {}}


def main(root: Path, ref: str) -> None:
    def show(path: str) -> str:
        return subprocess.run(["git", "-C", str(root), "show", f"{ref}:{path}"], capture_output=True, text=True, check=True).stdout

    commit = subprocess.run(["git", "-C", str(root), "rev-parse", ref + "^{commit}"], capture_output=True, text=True, check=True).stdout.strip()
    source = Source()
    files = sorted({p for p, _ in RESOURCES.values()} | {p for p, _ in IAM_MEMBERS.values()} | {IAM_BASE[0], PROVIDER[0]} | set(SHARED))
    for path in files:
        source.add(show(path))
    ex = Extractor(source)
    resources = {name: {"source": path, "block": ex.resource(func)} for name, (path, func) in RESOURCES.items()}
    base = ex.schema_map(source.vars[IAM_BASE[1]])
    for name, (path, var) in IAM_MEMBERS.items():
        parent = ex.schema_map(source.vars[var])
        resources[name] = {"source": f"{IAM_BASE[0]} + {path}", "block": schema_block(base | parent)}
    data_sources = {}
    for name, (path, resource_name) in DERIVED_DATA_SOURCES.items():
        data_sources[name] = {"source": path, "block": data_source_from_resource(resources[resource_name]["block"], show(path))}
    for name in DATA_ONLY:
        del resources[name]
    for name, path in FRAMEWORK_DATA_SOURCES.items():
        data_sources[name] = {"source": path, "block": framework_data_source(show(path))}
    out = {
        "provider": {"repository": "hashicorp/terraform-provider-google", "version": ref, "commit": commit},
        "provider_config": {"source": PROVIDER[0], "block": ex.resource(PROVIDER[1])},
        "note": "Extracted by extract.py from the provider's Go schema definitions; facts only (names, nesting, required, max items, enums).",
        "resources": dict(sorted(resources.items())),
        "data_sources": dict(sorted(data_sources.items())),
    }
    Path(__file__).with_name(f"schema-{ref}.json").write_text(json.dumps(out, indent=1, sort_keys=False) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "HEAD")
