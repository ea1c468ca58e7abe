"""The layout's rules, read from every module's imports with `ast` (lazy imports inside functions, and
imports only for type checkers, count too):

    proto  <-  kernel (potluck)  <-  node  <-  tracker
                                 <-  audit
    the CLI (potluck.cli) above them all

No import cycle between packages; no module over 600 lines.
"""

import ast
import itertools
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"potluck": "potluck", "proto": "potluck.proto", "node": "potluck.node", "tracker": "potluck.tracker",
           "audit": "potluck.audit"}
MAX_LINES = 600
# layer -> the layers it may import (besides itself)
ALLOWED = {
    "proto": set(),
    "kernel": {"proto"},
    "node": {"kernel", "proto"},
    "tracker": {"node", "kernel", "proto"},
    "audit": {"kernel", "proto"},
    "cli": {"tracker", "node", "audit", "kernel", "proto"},
}


def _modules() -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, whether it is a package's __init__)."""
    found = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            is_init = parts[-1] == "__init__"
            found[".".join([package, *(parts[:-1] if is_init else parts)])] = (path, is_init)
    return found


MODULES = _modules()


def _imports(name: str) -> set[str]:
    """The potluck modules `name` imports (a `from X import y` that names a submodule imports it)."""
    path, is_init = MODULES[name]
    package = name if is_init else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in MODULES)
    return found - {name}


def _package(name: str) -> str:
    return name if MODULES[name][1] else name.rpartition(".")[0]


def _layer(name: str) -> str:
    for prefix in ("potluck.cli", "potluck.proto", "potluck.node", "potluck.tracker", "potluck.audit"):
        if name == prefix or name.startswith(prefix + "."):
            return prefix.split(".")[1]
    return "kernel"


def test_every_import_goes_down_the_layers():
    forbidden = [f"{name} ({_layer(name)}) imports {target} ({_layer(target)})"
                 for name in sorted(MODULES) for target in sorted(_imports(name))
                 if _layer(target) != _layer(name) and _layer(target) not in ALLOWED[_layer(name)]]
    assert not forbidden, "\n".join(forbidden)


def test_no_import_cycle_between_packages():
    edges: dict[str, set[str]] = {}
    for name in MODULES:
        for target in _imports(name):
            source_package, target_package = _package(name), _package(target)
            # A package's __init__ handing on its own modules' names is no edge between packages.
            if source_package != target_package and not target_package.startswith(source_package + "."):
                edges.setdefault(source_package, set()).add(target_package)
    cycles = []
    for start in sorted(edges):
        stack, seen = [(start, [start])], set()
        while stack:
            package, path = stack.pop()
            for nxt in sorted(edges.get(package, ())):
                if nxt == start:
                    cycles.append(" -> ".join([*path, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    assert not cycles, "\n".join(cycles)


def test_the_checks_see_what_they_claim_to():
    # They are only worth something if they read real edges: a few that must be there.
    assert "potluck.proto.tracker_pb2" in _imports("potluck.tracker_client")
    assert "potluck.node.tasks" in _imports("potluck.tracker.verifier.verifier")
    assert "potluck.tracker.verifier.verification" in _imports("potluck.tracker.verifier")  # relative imports
    assert _layer("potluck.cli.swarm") == "cli" and _layer("potluck.tlog.merkle") == "kernel"


def test_no_module_is_over_600_lines():
    generated = ("_pb2.py", "_pb2_grpc.py")
    files = itertools.chain(*(ROOT.joinpath(folder).rglob("*.py") for folder in (*FOLDERS, "tests", "benchmarks")))
    long = [f"{path.relative_to(ROOT)}: {n} lines" for path in files if not path.name.endswith(generated)
            if (n := len(path.read_text().splitlines())) > MAX_LINES]
    assert not long, "\n".join(long)


@pytest.mark.parametrize(("module", "why"), [
    ("potluck.tracker.intake.opening_worker", "each report-opening worker would carry torch and hivemind"),
    ("potluck.cli", "`potluck --help` and `swarm init` would take seconds"),
])
def test_light_modules_stay_light(module, why):
    code = f"import sys, {module}; print(sorted({{'torch', 'hivemind'}} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert loaded.stdout.strip() == "[]", f"importing {module} loads {loaded.stdout.strip()}: {why}"
