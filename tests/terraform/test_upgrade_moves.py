"""Upgrades from the previous release's stacks keep what they can: every resource address of that rendering
(tests/terraform/data/upgrade, with the commit and how it was made) that today's rendering no longer has is
either moved by a `moved` block to an address today's stack declares, or an IAM binding whose member today's
stack changes (a different binding, which a plan replaces whatever its address).

Statically, without providers: the GCP stack cannot be planned here (no google provider in the mirror). The
AWS stack's upgrade is also applied and planned on moto in test_e2e_moto_upgrade.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import hcl2
import pytest

from mlkit.render.infra import render
from mlkit.spec.loader import load, loads
from tests.conftest import EXAMPLES
from tests.terraform.test_gcp_static import plain

DATA = Path(__file__).parent / "data/upgrade"
GCP_SPEC = Path(__file__).resolve().parent.parent / "render/data/specs/gcp-async.yaml"
CLUSTER = "infra/terraform/cluster/"


def parsed(text: str) -> dict:
    return plain(hcl2.loads(text))


def resources(doc: dict) -> dict[str, dict]:
    """Resource addresses (type.name, without instance keys) and their bodies."""
    return {f"{kind}.{name}": body for block in doc.get("resource", []) for kind, named in block.items() for name, body in named.items()}


def moves(*docs: dict) -> dict[str, str]:
    """Each moved block's from -> to, with instance keys left out (for_each keys are the spec's API names)."""
    def bare(ref: str) -> str:
        return re.sub(r'\[[^]]*\]', "", ref.removeprefix("${").removesuffix("}"))
    return {bare(m["from"]): bare(m["to"]) for doc in docs for m in doc.get("moved", [])}


def module_args(doc: dict, name: str) -> dict:
    return next(block[name] for block in doc["module"] if name in block)


def binding(body: dict, call: dict | None) -> dict:
    """What an IAM member resource grants: its arguments with the member as the root stack passes it (a module's
    var.X resolved through the module call) and its condition's expression (a title is only a label)."""
    out = {k: v for k, v in body.items() if k not in ("condition", "member")}
    member = body.get("member", "")
    if call is not None and (var := re.fullmatch(r"\$\{var\.(\w+)\}", member)):
        member = call[var.group(1)]
    return out | {"member": member, "condition": [c.get("expression") for c in body.get("condition", [])]}


def bindings_kept_or_moved(old: dict[str, str], new: dict[str, str], module: str) -> list[str]:
    """What an upgrade from old to new would delete although today's stack declares the same thing elsewhere."""
    old_root, new_root = parsed(old["main.tf"]), parsed(new["main.tf"])
    old_mod, new_mod = parsed(old[f"modules/{module}/main.tf"]), parsed(new[f"modules/{module}/main.tf"])
    module_call = module.replace("-", "_")
    problems = []
    for scope, before, after, calls in (
        ("", old_root, new_root, (None, None)),
        (f"module.{module_call}.", old_mod, new_mod, (module_args(old_root, module_call), module_args(new_root, module_call))),
    ):
        moved = moves(after) | {k.removeprefix(scope): v.removeprefix(scope) for k, v in moves(new_root).items() if k.startswith(scope)}
        now = resources(after)
        for address, body in resources(before).items():
            if address in now:
                continue
            if address in moved:
                if moved[address] not in now or moved[address].split(".")[0] != address.split(".")[0]:
                    problems.append(f"{scope}{address} moves to {moved[address]}, which today's stack does not declare as that type")
                elif "member" in body and binding(now[moved[address]], calls[1]) != binding(body, calls[0]):
                    problems.append(f"{scope}{address} moves to {moved[address]}, a different binding")
                continue
            kind = address.split(".")[0]
            same = [a for a, b in now.items() if a.split(".")[0] == kind and "member" in body and binding(b, calls[1]) == binding(body, calls[0])]
            if same:
                problems.append(f"{scope}{address} is gone but today's {same} is the same binding: a moved block keeps it")
    return problems


def stack(files: dict[str, str]) -> dict[str, str]:
    return {rel.removeprefix(CLUSTER): text for rel, text in files.items() if rel.startswith(CLUSTER)}


def test_gcp_upgrade_from_one_account_per_async_api_moves_the_publish_binding():
    old = json.loads((DATA / "gcp-async-77443ff.json").read_text())["files"]
    new = stack(render(loads(GCP_SPEC.read_text())))
    assert bindings_kept_or_moved(old, new, "async-queue") == []
    # The one binding kept: publisher on the API's topic, for the account that is now the front's.
    assert moves(parsed(new["modules/async-queue/main.tf"])) == {
        "google_pubsub_topic_iam_member.api_publish": "google_pubsub_topic_iam_member.front_publish"}


def test_gcp_check_finds_a_missing_move():
    """Without the moved block the check names the binding an upgrade would delete."""
    old = json.loads((DATA / "gcp-async-77443ff.json").read_text())["files"]
    new = stack(render(loads(GCP_SPEC.read_text())))
    module = new["modules/async-queue/main.tf"]
    new["modules/async-queue/main.tf"] = re.sub(r"moved \{[^}]*\}\n", "", module)
    assert new["modules/async-queue/main.tf"] != module
    problems = bindings_kept_or_moved(old, new, "async-queue")
    assert len(problems) == 1 and "module.async_queue.google_pubsub_topic_iam_member.api_publish is gone" in problems[0]


def test_aws_upgrade_from_the_api_role_moves_the_fronts_role_and_queue_policy():
    old = json.loads((DATA / "async-example-77443ff.json").read_text())["files"]
    new = stack(render(load(EXAMPLES / "async/mlkit.yaml")))
    assert bindings_kept_or_moved(old, new, "async-queue") == []
    assert moves(parsed(new["main.tf"])) == {"module.api_role": "module.async_front_role",
                                             "aws_iam_role_policy.async_api": "aws_iam_role_policy.async_front"}


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_moved_blocks_name_each_async_api_and_no_other(cloud):
    """One pair of moved blocks per async API, keyed by its name (for_each keys are static in moved blocks)."""
    extra = "gcp_project: acme-prod\n" if cloud == "gcp" else ""
    spec = loads(
        f"project: acme\ncloud: {cloud}\nregion: {'europe-west4' if cloud == 'gcp' else 'us-west-2'}\n{extra}"
        "cluster:\n  node_pools:\n    - {name: cpu, instance_type: " + ("e2-standard-4" if cloud == "gcp" else "m6i.large")
        + ", min_nodes: 1, max_nodes: 3}\napis:\n"
        "  - {name: video, kind: async, predictor: predictor.py:Predictor, model: model/}\n"
        "  - {name: docs, kind: async, predictor: predictor.py:Predictor, model: model/}\n"
        "  - {name: web, predictor: predictor.py:Predictor, model: model/}\n"
    )
    main = parsed(stack(render(spec))["main.tf"])
    pairs = sorted((m["from"], m["to"]) for m in main.get("moved", []))
    if cloud == "gcp":  # GCP's move is inside the module, once for every instance of it
        assert pairs == []
        return
    assert pairs == sorted(
        [(f'${{module.api_role["{api}"]}}', f'${{module.async_front_role["{api}"]}}') for api in ("video", "docs")]
        + [(f'${{aws_iam_role_policy.async_api["{api}"]}}', f'${{aws_iam_role_policy.async_front["{api}"]}}') for api in ("video", "docs")]
    )
