"""Which source files a pipeline runs: the code deps of the DVC stages, the resume fingerprint.

``module_closure("audioscope_kedro.pipelines.train")`` follows the imports of a module (or of
every file of a package) statically, with ``ast``, through every module of this package they
reach: imports inside functions, ``from audioscope_kedro.x import y`` where ``y`` is a module,
relative imports, ``importlib.import_module("audioscope_kedro.x")`` with a literal name, and the
``__init__.py`` of the enclosing packages when they hold code (importing a module runs them).
Nothing is imported; third-party modules are not followed.

``source_fingerprint(module)`` hashes that closure: a checkpoint written by other code is not
resumed from, while an edit elsewhere in the package leaves it valid.

The code ``deps`` of each stage in ``dvc.yaml`` are derived from the same closure, from the
pipeline's package and the ``audioscope_kedro`` dataset classes its datasets have in the
catalog::

    python -m audioscope_kedro.source_closure --write-dvc   # rewrite them (make dvc-deps)
    python -m audioscope_kedro.source_closure --check       # exit 1 listing what differs
    python -m audioscope_kedro.source_closure audioscope_kedro.pipelines.train   # one closure
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import re
import shlex
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import yaml

from audioscope_kedro.atomic import write_text

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGE = PACKAGE_DIR.name  # audioscope_kedro (also when run as `python -m`)
REPO_ROOT = PACKAGE_DIR.parents[1]  # src layout: <repo>/src/<package>
REGENERATE = "make dvc-deps (python -m audioscope_kedro.source_closure --write-dvc)"

# a string literal naming a module of the package, as handed to importlib or `python -m`
_MODULE_STRING = re.compile(rf"^{PACKAGE}(\.[A-Za-z_][A-Za-z0-9_]*)*$")


# ---------------------------------------------------------------------------- closure


def _module_file(name: str, package_dir: Path) -> Path | None:
    """File of a dotted module name inside the package (a package's ``__init__.py``)."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = package_dir.joinpath(*parts[1:])
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if len(parts) > 1 and base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _module_name(path: Path, package_dir: Path) -> str:
    rel = path.relative_to(package_dir).with_suffix("")
    parts = [PACKAGE, *rel.parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _has_code(path: Path) -> bool:
    """Whether a file holds more than a docstring (an empty ``__init__.py`` changes nothing)."""
    body = ast.parse(path.read_text(encoding="utf-8"), filename=str(path)).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return bool(body)


def _imported_names(path: Path, package_dir: Path) -> Iterator[str]:
    """Dotted names a file imports (or names as a module string), absolute, possibly with a
    trailing attribute (``pkg.mod.Class``); the caller keeps those that are modules."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    current = _module_name(path, package_dir)
    # the package a relative import starts from: the module's parent, or the package itself
    package = current if path.name == "__init__.py" else current.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            yield base
            for alias in node.names:
                if alias.name != "*":
                    yield f"{base}.{alias.name}"  # `from pkg import submodule`
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and _MODULE_STRING.match(node.value)
        ):
            yield node.value


def _resolve(name: str, package_dir: Path) -> Path | None:
    """The module a dotted name designates: the longest prefix that is a module of the
    package (``audioscope_kedro.datasets.model_datasets.ModelFolderDataset`` -> its module)."""
    parts = name.split(".")
    while parts:
        found = _module_file(".".join(parts), package_dir)
        if found is not None:
            return found
        parts.pop()
    return None


def _parents_with_code(path: Path, package_dir: Path) -> Iterator[Path]:
    """``__init__.py`` of the packages enclosing a file (the package's own included)."""
    folder = path.parent
    while True:
        init = folder / "__init__.py"
        if init != path and init.is_file() and _has_code(init):
            yield init
        if folder == package_dir:
            return
        folder = folder.parent


def _start_files(module: str, package_dir: Path) -> list[Path]:
    found = _module_file(module, package_dir)
    if found is None:
        raise ModuleNotFoundError(f"{module} is not a module of {package_dir}")
    if found.name == "__init__.py":  # a package: every module directly in it
        return sorted(found.parent.glob("*.py"))
    return [found]


def _closure(starts: Iterable[Path], package_dir: Path) -> set[Path]:
    seen: set[Path] = set()
    todo = list(starts)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(_parents_with_code(path, package_dir))
        for name in _imported_names(path, package_dir):
            found = _resolve(name, package_dir)
            if found is None or found in seen:
                continue
            if found.name == "__init__.py" and not _has_code(found):
                continue  # an empty package __init__ changes nothing (until it holds code)
            todo.append(found)
    return seen


def module_closure(module: str, *, package_dir: Path | None = None) -> list[Path]:
    """Source files of ``module`` (every ``.py`` file directly in it, for a package) and of
    every module of this package they import, transitively; sorted absolute paths.

    ``package_dir``: the folder of the ``audioscope_kedro`` package to read (default: this one).
    """
    package_dir = (package_dir or PACKAGE_DIR).resolve()
    return sorted(_closure(_start_files(module, package_dir), package_dir))


def source_fingerprint(module: str, *, package_dir: Path | None = None) -> str:
    """sha1 of the relative paths and bytes of ``module_closure(module)``."""
    package_dir = (package_dir or PACKAGE_DIR).resolve()
    digest = hashlib.sha1()
    for path in module_closure(module, package_dir=package_dir):
        digest.update(path.relative_to(package_dir.parent).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


# ---------------------------------------------------------------------------- DVC stages


def _catalog_entries(conf_dir: Path, env: str | None) -> dict[str, object]:
    """Raw catalog entries of ``conf/base`` overridden by ``conf/<env>`` (no interpolation:
    only the ``type`` strings matter here)."""
    entries: dict[str, object] = {}
    for folder in ["base", env] if env and env != "base" else ["base"]:
        root = conf_dir / folder
        files = {
            *root.glob("catalog*.yml"),
            *root.glob("catalog*.yaml"),
            *root.glob("catalog*/**/*.yml"),
            *root.glob("catalog*/**/*.yaml"),
            *root.glob("**/catalog*.yml"),
            *root.glob("**/catalog*.yaml"),
        }
        for file in sorted(files):
            entries.update(yaml.safe_load(file.read_text(encoding="utf-8")) or {})
    return {k: v for k, v in entries.items() if not k.startswith("_")}


def _catalog_entry(name: str, entries: dict[str, object]) -> object:
    """The entry of a dataset: by name, else the first dataset factory pattern it matches."""
    if name in entries:
        return entries[name]
    for pattern, entry in entries.items():
        if "{" in pattern:
            regex = re.sub(r"\\\{[^}]*\\\}", ".+?", re.escape(pattern))
            if re.fullmatch(regex, name):
                return entry
    return None


def _package_strings(value: object) -> Iterator[str]:
    """Every string in a catalog entry that names something in this package (``type``, the
    ``dataset`` of a PartitionedDataset, ...)."""
    if isinstance(value, str):
        if value.startswith(f"{PACKAGE}."):
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _package_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _package_strings(item)


def _pipelines() -> dict:
    from kedro.framework.project import configure_project, find_pipelines

    configure_project(PACKAGE)
    return find_pipelines(raise_errors=True)


def stage_code_deps(
    pipeline: str, env: str | None = "demo", *, repo_root: Path | None = None, pipelines=None
) -> list[str]:
    """Code deps of the DVC stage that runs ``kedro run --env <env> --pipeline <pipeline>``:
    the closure of ``audioscope_kedro.pipelines.<pipeline>`` and of the module of every
    ``audioscope_kedro`` class in the catalog entries of the datasets the pipeline reads or
    writes; sorted paths relative to the repository root (``src/audioscope_kedro/...py``)."""
    repo_root = (repo_root or REPO_ROOT).resolve()
    package_dir = PACKAGE_DIR
    pipelines = _pipelines() if pipelines is None else pipelines
    entries = _catalog_entries(repo_root / "conf", env)
    starts = _start_files(f"{PACKAGE}.pipelines.{pipeline}", package_dir)
    for dataset in sorted(pipelines[pipeline].datasets()):
        if dataset.startswith("params:") or dataset == "parameters":
            continue
        for name in _package_strings(_catalog_entry(dataset, entries)):
            found = _resolve(name, package_dir)
            if found is None:
                raise ModuleNotFoundError(f"catalog entry {dataset!r}: no module for {name}")
            starts.append(found)
    files = _closure(starts, package_dir)
    return sorted(path.relative_to(REPO_ROOT).as_posix() for path in files)


def stage_run(cmd: object) -> tuple[str, str | None] | None:
    """(pipeline, env) of a stage command ``kedro run [--env E] --pipeline P``."""
    if not isinstance(cmd, str):
        return None
    words = shlex.split(cmd)
    if words[:2] != ["kedro", "run"]:
        return None
    options: dict[str, str] = {}
    for i, word in enumerate(words):
        for flag in ("--pipeline", "--pipelines", "--env", "-p", "-e"):
            if word == flag and i + 1 < len(words):
                options[flag.lstrip("-")[0]] = words[i + 1]
            elif word.startswith(f"{flag}="):
                options[flag.lstrip("-")[0]] = word.split("=", 1)[1]
    if "p" not in options:
        return None
    return options["p"], options.get("e")


def code_prefix() -> str:
    """How code deps start in dvc.yaml: the package folder relative to the repository."""
    return PACKAGE_DIR.relative_to(REPO_ROOT).as_posix() + "/"


def expected_code_deps(dvc_yaml: Path | None = None) -> dict[str, list[str]]:
    """Stage name -> its derived code deps, for every stage of dvc.yaml that runs a pipeline."""
    dvc_yaml = dvc_yaml or REPO_ROOT / "dvc.yaml"
    stages = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")).get("stages", {})
    pipelines = _pipelines()
    out = {}
    for name, stage in stages.items():
        run = stage_run(stage.get("cmd"))
        if run is not None:
            out[name] = stage_code_deps(
                run[0], run[1], repo_root=dvc_yaml.parent, pipelines=pipelines
            )
    return out


def listed_code_deps(dvc_yaml: Path | None = None) -> dict[str, list[str]]:
    """Stage name -> the code deps (paths under the package folder) dvc.yaml lists."""
    dvc_yaml = dvc_yaml or REPO_ROOT / "dvc.yaml"
    stages = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")).get("stages", {})
    prefix = code_prefix()
    return {
        name: [
            d.rstrip("/")
            for d in stage.get("deps", [])
            if isinstance(d, str) and (d + "/").startswith(prefix)
        ]
        for name, stage in stages.items()
    }


def differences(dvc_yaml: Path | None = None) -> dict[str, tuple[list[str], list[str]]]:
    """Stage -> (missing, extra) code deps; only stages that differ."""
    expected = expected_code_deps(dvc_yaml)
    listed = listed_code_deps(dvc_yaml)
    out = {}
    for name, files in expected.items():
        missing = sorted(set(files) - set(listed[name]))
        extra = sorted(set(listed[name]) - set(files))
        if missing or extra:
            out[name] = (missing, extra)
    return out


_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w.-]*):(\s|$)")  # `key:`, `key: value`
_ITEM = re.compile(r"^(?P<indent> *)- +(?P<value>.*?)\s*(#.*)?$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _blank(line: str) -> bool:
    return not line.strip() or line.lstrip().startswith("#")


def rewrite_dvc_text(text: str, code_deps: dict[str, list[str]]) -> str:
    """dvc.yaml text with the code entries of each stage's ``deps`` replaced by ``code_deps``
    (data deps, comments, the order of keys and every other line kept)."""
    lines = text.splitlines(keepends=True)
    prefix = code_prefix()
    out: list[str] = []
    in_stages = False
    stage_indent = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = None if _blank(line) else _KEY.match(line.rstrip("\n"))
        if m and _indent(line) == 0:
            in_stages = m["key"] == "stages"
        elif m and in_stages and (stage_indent is None or _indent(line) == stage_indent):
            stage_indent = _indent(line)
            end = i + 1  # the stage's lines: up to the next line as little indented
            while end < len(lines) and (_blank(lines[end]) or _indent(lines[end]) > stage_indent):
                end += 1
            body = lines[i + 1 : end]
            if m["key"] in code_deps:
                body = _rewrite_stage(body, code_deps[m["key"]], prefix)
            out.append(line)
            out.extend(body)
            i = end
            continue
        out.append(line)
        i += 1
    return "".join(out)


def _rewrite_stage(body: list[str], files: list[str], prefix: str) -> list[str]:
    keys = [
        (n, _indent(line), _KEY.match(line.rstrip("\n")))
        for n, line in enumerate(body)
        if not _blank(line) and _KEY.match(line.rstrip("\n"))
    ]
    if not keys:
        return body
    key_indent = min(indent for _, indent, _ in keys)
    deps_at = next(
        (n for n, indent, m in keys if indent == key_indent and m["key"] == "deps"), None
    )
    if deps_at is None:
        # no deps yet: after the cmd line
        cmd_at = next(
            (n for n, indent, m in keys if indent == key_indent and m["key"] == "cmd"), -1
        )
        item = " " * (key_indent + 2) + "- {}\n"
        new = [" " * key_indent + "deps:\n", *(item.format(f) for f in files)]
        return body[: cmd_at + 1] + new + body[cmd_at + 1 :]
    end = deps_at + 1
    while end < len(body) and (_blank(body[end]) or _indent(body[end]) > key_indent):
        end += 1
    while end > deps_at + 1 and not body[end - 1].strip():  # trailing blank lines stay after
        end -= 1
    items = body[deps_at + 1 : end]
    kept: list[str] = []
    insert_at = None
    item_indent = key_indent + 2
    for line in items:
        m = _ITEM.match(line.rstrip("\n"))
        if m and not line.lstrip().startswith("#"):
            item_indent = len(m["indent"])
            value = m["value"].strip("'\"")
            if (value.rstrip("/") + "/").startswith(prefix):
                if insert_at is None:
                    insert_at = len(kept)
                continue
        kept.append(line)
    if insert_at is None:  # after the last data dep
        insert_at = max(
            (n + 1 for n, line in enumerate(kept) if _ITEM.match(line.rstrip("\n"))), default=0
        )
    new_items = [" " * item_indent + f"- {f}\n" for f in files]
    kept[insert_at:insert_at] = new_items
    return body[: deps_at + 1] + kept + body[end:]


def write_dvc(dvc_yaml: Path | None = None) -> bool:
    """Rewrite the code deps of dvc.yaml; True when the file changed."""
    dvc_yaml = dvc_yaml or REPO_ROOT / "dvc.yaml"
    expected = expected_code_deps(dvc_yaml)
    text = dvc_yaml.read_text(encoding="utf-8")
    new = rewrite_dvc_text(text, expected)
    stages = yaml.safe_load(new)["stages"]
    prefix = code_prefix()
    for name, files in expected.items():  # the rewrite did what it should
        listed = [d for d in stages[name].get("deps", []) if (d + "/").startswith(prefix)]
        if listed != files:
            raise RuntimeError(f"rewriting stage {name} of {dvc_yaml} went wrong: {listed}")
    if new != text:
        write_text(dvc_yaml, new)
    return new != text


def _report(diffs: dict[str, tuple[list[str], list[str]]], repo_root: Path) -> str:
    lines = []
    for name, (missing, extra) in diffs.items():
        for path in missing:
            lines.append(f"stage {name}: missing {path} (its pipeline runs this code)")
        for path in extra:
            why = "does not exist" if not (repo_root / path).is_file() else "not derived"
            if (repo_root / path).is_dir():
                why = "a folder: list its files"
            lines.append(f"stage {name}: extra {path} ({why})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m audioscope_kedro.source_closure", description=__doc__.split("\n")[0]
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write-dvc", action="store_true", help="rewrite dvc.yaml code deps")
    group.add_argument("--check", action="store_true", help="exit 1 if dvc.yaml differs")
    group.add_argument("module", nargs="?", help="print a module's closure and fingerprint")
    parser.add_argument("--dvc-yaml", type=Path, default=REPO_ROOT / "dvc.yaml")
    args = parser.parse_args(argv)
    if args.module:
        for path in module_closure(args.module):
            print(path.relative_to(REPO_ROOT).as_posix())
        print(source_fingerprint(args.module))
        return 0
    if args.write_dvc:
        changed = write_dvc(args.dvc_yaml)
        print(f"{args.dvc_yaml}: {'code deps rewritten' if changed else 'up to date'}")
        return 0
    diffs = differences(args.dvc_yaml)
    if diffs:
        print(_report(diffs, args.dvc_yaml.resolve().parent))
        print(f"regenerate with: {REGENERATE}")
        return 1
    print(f"{args.dvc_yaml}: code deps up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
