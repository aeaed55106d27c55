"""`mlkit validate`: check a spec without writing anything."""

from __future__ import annotations

import json

from ..options import DEFAULT_SPEC, JsonOut, SpecFile, say


def command(file: SpecFile = DEFAULT_SPEC, json_out: JsonOut = False) -> None:
    """Check mlkit.yaml: fields, types, clouds, accelerators and pools. Exit 1 lists every problem."""
    from ..spec.loader import load

    spec = load(file)
    if json_out:
        print(json.dumps({"valid": True, "project": spec.project, "cloud": spec.cloud, "apis": [a.name for a in spec.apis]}))
    say(f"{file}: valid ({spec.cloud}, {len(spec.cluster.node_pools)} node pools, {len(spec.apis)} APIs)")
