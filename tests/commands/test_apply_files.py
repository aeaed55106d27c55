"""`mlkit apply` writes inside the project only, never through links planted in `.mlkit/`."""

from __future__ import annotations

import pytest

from tests.commands.test_operate import proj  # noqa: F401 (the operate tests' project fixture)
from tests.conftest import assert_one_line_error, mlkit


@pytest.mark.parametrize("link", [".mlkit/build", ".mlkit/build/sentiment"])
def test_a_linked_build_folder_is_refused_before_the_context_is_written(proj, sentinel, tmp_path, link):  # noqa: F811
    root, env = proj
    # A docker that answers, so that apply goes on to write the build context of an image the registry lacks.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "docker").chmod(0o755)
    (root / link).parent.mkdir(parents=True, exist_ok=True)
    (root / link).symlink_to(sentinel.root / "secrets", target_is_directory=True)
    result = mlkit("apply", "--only", "apis", cwd=root, env=env | {"PATH": f"{bin_dir}:/usr/bin:/bin"}, timeout=120)
    assert_one_line_error(result, f"{link} is a symbolic link")
    sentinel.assert_untouched()
