"""Layers point down only (payouts/README.md): an import from a lower layer into a higher one
fails here, naming the file, the line and both layers.

cli/ and workers/ -> wiring.py (with config/, read only at the edges) -> runs/ -> calculation/,
snapshot/, ledger/, stellar/, sources/, export/ -> money, periods, redact, clock, strkey, retry,
files, tls. The sandbox is a product of its own: it may use stellar/ and money, and nothing of the payout service imports
it but the `payouts sandbox` commands and the demo.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: a package's layer: higher numbers may import lower ones and their own, never higher ones
LAYER = {
    "money": 0,
    "periods": 0,
    "redact": 0,
    "clock": 0,
    "strkey": 0,
    "retry": 0,
    "files": 0,
    "tls": 0,
    "calculation": 1,
    "snapshot": 1,
    "ledger": 1,
    "stellar": 1,
    "sources": 1,
    "export": 1,
    "runs": 2,
    "wiring": 3,
    "config": 3,
    "cli": 4,
    "workers": 4,
}
#: the sandbox's own layer: beside the service, reachable from its edges only
SANDBOX_MAY_IMPORT = {"sandbox", "stellar", "money", "redact", "files", "tls"}
IMPORTS_SANDBOX = {"cli", "sandbox"}


def _package_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "payouts" and len(parts) > 1 and parts[1] != "__init__":
        return parts[1]
    if parts[0] in ("config", "workers"):
        return parts[0]
    return None


def _sources(root: Path = ROOT) -> list[tuple[Path, str]]:
    files = [
        (path, _package_of(".".join(path.relative_to(root).with_suffix("").parts)))
        for path in root.glob("payouts/**/*.py")
    ]
    files += [(path, top) for top in ("config", "workers") for path in (root / top).glob("**/*.py")]
    return [(path, package) for path, package in files if package is not None]


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _violations(root: Path = ROOT) -> list[str]:
    problems = []
    for path, package in _sources(root):
        for line, module in _imports(path):
            target = _package_of(module)
            if target is None or target == package:
                continue
            where = f"{path.relative_to(root)}:{line} imports {module}"
            if package == "sandbox":
                if target not in SANDBOX_MAY_IMPORT:
                    problems.append(f"{where}: the sandbox may use only {sorted(SANDBOX_MAY_IMPORT - {'sandbox'})}")
            elif target == "sandbox":
                if package not in IMPORTS_SANDBOX:
                    problems.append(f"{where}: only the CLI's edges may use the sandbox")
            elif LAYER[target] > LAYER[package]:
                problems.append(
                    f"{where}: {package} (layer {LAYER[package]}) reaches up to {target} (layer {LAYER[target]})"
                )
    return problems


def test_every_package_has_a_layer():
    packages = {package for _, package in _sources()}
    assert packages - set(LAYER) - {"sandbox"} == set(), "a new package needs a layer in LAYER"


def test_layers_point_down_only():
    problems = _violations()
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("source", "module"),
    [("payouts/ledger/x.py", "payouts.runs.service"), ("payouts/stellar/x.py", "payouts.sandbox.network")],
)
def test_the_rule_catches_an_upward_import(tmp_path, source, module):
    # the checker itself, on a planted tree: a rule that cannot fail proves nothing
    planted = tmp_path / source
    planted.parent.mkdir(parents=True)
    planted.write_text(f"import {module}\n")
    assert [problem.split(":")[0] for problem in _violations(tmp_path)] == [source]
