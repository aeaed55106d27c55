"""The Cloud Storage emulator the tests start: `python -m tests.gcs_server ARGS` runs `python -m
gcp_storage_emulator ARGS` with its metadata written as compact JSON.

gcp-storage-emulator writes its whole metadata (every bucket and object) as JSON after each change, with
`indent=2`, which takes Python's pure-Python encoder instead of the C one, even in `--in-memory` mode: with
a thousand results stored (tests/runtime/test_async_clouds.py) that rewrite was half of the emulator's CPU.
Without the indent the same data is written by the C encoder. What the emulator stores and answers is
unchanged; only the stand-in's speed is.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from gcp_storage_emulator import storage


class _CompactJson:
    """The json module, but dumps() ignores indent."""

    def __getattr__(self, name: str) -> Any:
        return getattr(json, name)

    @staticmethod
    def dumps(obj: Any, *args: Any, indent: Any = None, **kwargs: Any) -> str:
        return json.dumps(obj, *args, **kwargs)


storage.json = _CompactJson()  # type: ignore[assignment]

if __name__ == "__main__":
    from gcp_storage_emulator.__main__ import main

    main(sys.argv[1:])
