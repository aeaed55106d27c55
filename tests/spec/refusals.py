"""What `loads` refuses a spec for: the spec tests' shared way to read its problems."""

from __future__ import annotations

import pytest

from mlkit.errors import SpecError
from mlkit.spec.loader import loads


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        loads(text)
    return info.value.problems


def only(text: str) -> str:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]
