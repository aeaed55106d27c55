"""The shared `assert_one_line_error` helper, tested on outputs it must refuse: about ten test files
lean on it, so a helper that passes anything would make all of them pass anything."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import assert_one_line_error


def done(stderr: str, code: int = 1) -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess(["mlkit"], code, "", stderr)


def test_one_error_line_passes_with_its_fragments():
    assert_one_line_error(done("error: mlkit.yaml: apis[0].name: must be a DNS label\n"), "mlkit.yaml", "apis[0].name")
    # Progress before the error, and a short indented list of files after it, are allowed.
    assert_one_line_error(done("rendering...\nerror:\nmerge conflicts in 2 files; resolve them:\n  infra/a.tf\n  infra/b.tf\n"), "merge conflicts")


REFUSED = {
    # The fabricated output the issue found accepted: a file, a line number and a ValueError.
    "a traceback without its header": (
        'error: bad input in mlkit.yaml\n  File "/x/cli/spec/loader.py", line 40, in load\n    raise ValueError(x)\nValueError: bad input\n'
    ),
    "a raw exception line": "ValueError: bad input in mlkit.yaml\nerror: bad input in mlkit.yaml\n",
    "two error lines": "error: bad input in mlkit.yaml\nerror: and another\n",
    "no error line": "bad input in mlkit.yaml\n",
    "a second unindented line": "error: bad input in mlkit.yaml\nsee the README\n",
    "a long block": "error: bad input in mlkit.yaml\n" + "  more\n" * 21,
    "a fragment outside the error line": "mlkit.yaml was read\nerror: bad input\n",
    "a Traceback": "Traceback (most recent call last):\nerror: bad input in mlkit.yaml\n",
}


@pytest.mark.parametrize("stderr", REFUSED.values(), ids=REFUSED.keys())
def test_refuses_what_is_not_one_error_line(stderr):
    with pytest.raises(AssertionError):
        assert_one_line_error(done(stderr), "mlkit.yaml")


def test_refuses_a_wrong_exit_code():
    with pytest.raises(AssertionError):
        assert_one_line_error(done("error: bad input in mlkit.yaml\n", code=2), "mlkit.yaml")
