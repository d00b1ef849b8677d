"""pyproject.toml declares every package the source imports (an install from it alone runs
every pipeline), and nothing it declares goes unused."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions

from tests.helpers import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "src" / "audioscope_kedro"


def _imported_top_level() -> set[str]:
    names = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"audioscope_kedro", "__future__"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    return {_normalise(re.split(r"[<>=\[; ]", d, maxsplit=1)[0]) for d in project["dependencies"]}


def test_every_import_is_declared():
    dists = packages_distributions()
    declared = _declared()
    missing = {
        module: dists.get(module, [module])
        for module in _imported_top_level()
        if not {_normalise(d) for d in dists.get(module, [module])} & declared
    }
    assert not missing, f"imported but not in pyproject.toml dependencies: {missing}"


def test_every_declared_runtime_package_is_imported():
    dists = packages_distributions()
    used = {_normalise(d) for m in _imported_top_level() for d in dists.get(m, [m])}
    # loaded by name: pyarrow is pandas' parquet engine, kedro-datasets the catalog's types
    unused = _declared() - used - {"pyarrow", "kedro-datasets"}
    assert not unused, f"declared in pyproject.toml but imported nowhere: {unused}"
