"""Every folder that holds an __init__.py must be listed in pyproject.toml, or the wheel silently lacks it."""

import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[2]


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _package_of(folder: Path, package_dir: dict[str, str]) -> str | None:
    rel = folder.relative_to(ROOT).as_posix()
    # The longest mapping that contains the folder names its package.
    for package, mapped in sorted(package_dir.items(), key=lambda kv: -len(kv[1])):
        if rel == mapped or rel.startswith(mapped + "/"):
            rest = rel[len(mapped):].strip("/")
            return package + ("." + rest.replace("/", ".") if rest else "")
    return None


def test_every_package_folder_is_listed():
    config = _config()
    listed, package_dir = set(config["packages"]), config["package-dir"]
    found = set()
    for init in ROOT.rglob("__init__.py"):
        if any(part.startswith(".") or part in ("build", "tests") for part in init.relative_to(ROOT).parts):
            continue
        package = _package_of(init.parent, package_dir)
        assert package is not None, f"{init.parent} holds __init__.py but no package-dir mapping covers it"
        found.add(package)
    missing = found - listed
    assert not missing, f"folders with __init__.py missing from [tool.setuptools] packages: {missing}"
    assert listed - found == set(), f"packages listed in pyproject.toml without a folder: {listed - found}"


def test_mapping_covers_the_user_folders():
    package_dir = _config()["package-dir"]
    assert package_dir == {
        "potluck": "potluck",
        "potluck.node": "node",
        "potluck.tracker": "tracker",
        "potluck.proto": "proto",
        "potluck.audit": "audit",
    }
