"""Which packages the wheel holds, discovered rather than listed, so a new subpackage cannot be left out.

Everything else about the project is in pyproject.toml. Two source roots map to two import packages
(see docs/architecture.md): `cli/` is `mlkit`, `runtime/` is `mlkit_runtime`. The kit's Terraform modules,
templates and examples ride inside the wheel as `mlkit/_kit/...`; `mlkit.kit` finds them there or, in
a source checkout or editable install, beside `cli/`.
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
SOURCE_ROOTS = {"mlkit": "cli", "mlkit_runtime": "runtime"}
KIT_DATA = {"mlkit._kit.terraform": "terraform", "mlkit._kit.templates": "templates", "mlkit._kit.examples": "examples"}


def discovered(name: str, folder: str) -> list[str]:
    """The package and every subpackage under its source root (any folder with an __init__.py)."""
    return [name] + [f"{name}.{sub}" for sub in find_packages(str(HERE / folder))]


setup(
    package_dir=SOURCE_ROOTS | KIT_DATA,
    packages=[p for name, folder in SOURCE_ROOTS.items() for p in discovered(name, folder)] + list(KIT_DATA),
    package_data={"mlkit.spec": ["*.yaml"]} | {name: ["**/*"] for name in KIT_DATA},
    exclude_package_data={"": ["__pycache__/*", "*.pyc"]} | {name: ["**/__pycache__/*", "**/*.pyc", "**/.terraform/**", "**/*.tfstate*"] for name in KIT_DATA},
)
