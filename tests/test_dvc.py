"""dvc.yaml against the pipelines (params, code deps, data paths), the data root of each
configuration environment, and `dvc repro` of the tiny chain in a copy of the repo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kedro.config import OmegaConfigLoader
from kedro.framework.project import configure_project, find_pipelines

from audioscope_kedro import source_closure
from tests.helpers import PROJECT_ROOT

DVC_YAML = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())
STAGES = DVC_YAML["stages"]
# configuration environments of the repository (conf/local is each user's own)
ENVS = sorted(p.name for p in (PROJECT_ROOT / "conf").iterdir() if p.is_dir() and p.name != "local")


def param_blocks_read(pipeline_name: str) -> set[str]:
    """Top-level parameter blocks that the pipeline's nodes take as `params:<block>...`."""
    configure_project("audioscope_kedro")
    pipeline = find_pipelines(raise_errors=True)[pipeline_name]
    return {
        name.removeprefix("params:").split(".")[0]
        for name in pipeline.inputs()
        if name.startswith("params:")
    }


def blocks_listed(stage: dict) -> dict[str, set[str]]:
    """block -> files that the stage lists it from."""
    out: dict[str, set[str]] = {}
    for entry in stage.get("params", []):
        for file, keys in entry.items():
            for key in keys:
                out.setdefault(key.split(".")[0], set()).add(file)
    return out


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_params_cover_what_the_pipeline_reads(name):
    stage = STAGES[name]
    assert stage["cmd"] == f"kedro run --env demo --pipeline {name}"
    listed = blocks_listed(stage)
    for block in param_blocks_read(name):
        assert block in listed, f"stage {name} does not list params block {block!r}"
        for env in ("base", "demo"):
            candidate = f"conf/{env}/parameters_{block}.yml"
            if (PROJECT_ROOT / candidate).exists() and block in yaml.safe_load(
                (PROJECT_ROOT / candidate).read_text()
            ):
                assert candidate in listed[block], (
                    f"stage {name}: {candidate} sets {block!r} but is not tracked"
                )
    for entry in stage.get("params", []):  # every listed key exists in its file
        for file, keys in entry.items():
            content = yaml.safe_load((PROJECT_ROOT / file).read_text())
            for key in keys:
                assert key.split(".")[0] in content, f"{file} has no {key}"


def test_every_pipeline_but_tune_is_a_stage():
    configure_project("audioscope_kedro")
    assert set(find_pipelines()) - {"tune", "__default__"} == set(STAGES)


def test_offline_plots_template():
    config = (PROJECT_ROOT / ".dvc/config").read_text()
    assert "html_template = plots_offline.html" in config
    html = (PROJECT_ROOT / ".dvc/plots_offline.html").read_text()
    assert "{plot_divs}" in html and "{scripts}" not in html  # DVC's CDN scripts have nowhere to go
    assert "http://" not in html.split("<script>")[0] and "cdn.jsdelivr" not in html
    assert html.count("<script>") == 3


# ---------------------------------------------------------------- code deps


@pytest.fixture(scope="module")
def derived_code_deps() -> dict[str, list[str]]:
    return source_closure.expected_code_deps(PROJECT_ROOT / "dvc.yaml")


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_code_deps_are_what_its_pipeline_imports(name, derived_code_deps):
    """A stage's src/ deps are exactly the modules its pipeline and its catalog datasets import
    (transitively): an edit to any of them reruns the stage, an edit elsewhere does not."""
    assert name in derived_code_deps, f"stage {name} does not run a kedro pipeline"
    listed = set(source_closure.listed_code_deps(PROJECT_ROOT / "dvc.yaml")[name])
    derived = set(derived_code_deps[name])
    problems = [
        f"dvc.yaml stage {name!r} does not list {path}, which its pipeline imports"
        for path in sorted(derived - listed)
    ]
    for path in sorted(listed - derived):
        why = (
            "does not exist"
            if not (PROJECT_ROOT / path).exists()
            else "is a folder (list its modules)"
            if (PROJECT_ROOT / path).is_dir()
            else "is not imported by its pipeline"
        )
        problems.append(f"dvc.yaml stage {name!r} lists {path}, which {why}")
    assert not problems, "\n".join(
        [*problems, f"regenerate the code deps with: {source_closure.REGENERATE}"]
    )


def test_rewriting_code_deps_keeps_the_rest_of_dvc_yaml(derived_code_deps):
    prefix = source_closure.code_prefix()

    def without_code(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.strip().startswith(f"- {prefix}")]

    text = (PROJECT_ROOT / "dvc.yaml").read_text()
    fixed = source_closure.rewrite_dvc_text(text, derived_code_deps)
    assert without_code(fixed) == without_code(text)  # data deps, comments, keys: as they were
    assert source_closure.rewrite_dvc_text(fixed, derived_code_deps) == fixed
    stages = yaml.safe_load(fixed)["stages"]
    for name, files in derived_code_deps.items():
        assert [d for d in stages[name]["deps"] if d.startswith(prefix)] == files
    name, files = next(iter(derived_code_deps.items()))
    broken = fixed.replace(f"      - {files[0]}\n", f"      - {prefix}gone.py\n", 1)
    assert broken != fixed
    assert source_closure.rewrite_dvc_text(broken, derived_code_deps) == fixed
    # a stage without deps gets them after its cmd
    bare = "stages:\n  s:\n    cmd: kedro run --pipeline s\n    outs:\n      - data/x\n"
    assert source_closure.rewrite_dvc_text(bare, {"s": [f"{prefix}a.py"]}) == (
        f"stages:\n  s:\n    cmd: kedro run --pipeline s\n    deps:\n      - {prefix}a.py\n"
        "    outs:\n      - data/x\n"
    )


def _write_package(root: Path, files: dict[str, str]) -> Path:
    package = root / "audioscope_kedro"
    for rel, text in files.items():
        (package / rel).parent.mkdir(parents=True, exist_ok=True)
        (package / rel).write_text(text)
    return package


def test_module_closure_follows_every_import_form(tmp_path):
    package = _write_package(
        tmp_path,
        {
            "__init__.py": "VERSION = 1\n",  # code: runs on every import, so included
            "a/__init__.py": "",  # no code: imported, but changes nothing
            "a/entry.py": (
                "import importlib\n"
                "import numpy\n"
                "from audioscope_kedro.b import sub\n"  # a submodule, named in a from-import
                "from . import sibling\n"
                "from ..c.deep import thing\n"
                "def later():\n"
                "    import audioscope_kedro.d.lazy as lazy\n"  # inside a function
                "    return importlib.import_module('audioscope_kedro.e'), lazy\n"
            ),
            "a/sibling.py": "from ..quiet.leaf import X\n",
            "a/other.py": "from audioscope_kedro import unrelated\n",
            "b/__init__.py": "from .helper import H\n",  # code, and its imports followed
            "b/helper.py": "H = 1\n",
            "b/sub.py": "S = 1\n",
            "b/unused.py": "U = 1\n",
            "c/__init__.py": "",
            "c/deep.py": "thing = 1\n",
            "d/__init__.py": '"""Only a docstring."""\n',
            "d/lazy.py": "L = 1\n",
            "e.py": "E = 1\n",
            "quiet/__init__.py": '"""Only a docstring."""\n',
            "quiet/leaf.py": "X = 1\n",
            "unrelated.py": "R = 1\n",
        },
    )

    def closure(module):
        found = source_closure.module_closure(module, package_dir=package)
        return [p.relative_to(package).as_posix() for p in found]

    reached = ["a/sibling.py", "b/__init__.py", "b/helper.py", "b/sub.py", "c/deep.py"]
    reached += ["d/lazy.py", "e.py", "quiet/leaf.py"]
    assert closure("audioscope_kedro.a.entry") == sorted(["__init__.py", "a/entry.py", *reached])
    # a package: every module directly in it
    assert closure("audioscope_kedro.a") == sorted(
        ["__init__.py", "a/__init__.py", "a/entry.py", "a/other.py", "unrelated.py", *reached]
    )
    with pytest.raises(ModuleNotFoundError):
        source_closure.module_closure("audioscope_kedro.nothing", package_dir=package)


def test_source_fingerprint_changes_with_the_closure_only(tmp_path):
    """The resume fingerprint of a pipeline: an edit to a module it imports changes it, an
    edit anywhere else in the package (or a new module) does not; the same code in another
    folder has the same fingerprint."""
    module = "audioscope_kedro.pipelines.train"
    package = tmp_path / "copy" / "audioscope_kedro"
    shutil.copytree(
        source_closure.PACKAGE_DIR, package, ignore=shutil.ignore_patterns("__pycache__")
    )
    fingerprint = source_closure.source_fingerprint(module, package_dir=package)
    assert fingerprint == source_closure.source_fingerprint(module)

    closure = source_closure.module_closure(module, package_dir=package)
    inside = [p for p in closure if "pipelines" not in p.relative_to(package).parts]
    outside = sorted(set(package.rglob("*.py")) - set(closure))
    assert inside and outside, (inside, outside)

    for path in outside:
        path.write_text(path.read_text() + "\n# edited\n")
    (package / "models" / "brand_new.py").write_text("NEW = 1\n")
    assert source_closure.source_fingerprint(module, package_dir=package) == fingerprint

    for path in inside:  # a module reached only through imports
        original = path.read_bytes()
        path.write_bytes(original + b"\n# edited\n")
        assert source_closure.source_fingerprint(module, package_dir=package) != fingerprint, (
            f"{path} is in the closure but does not change the fingerprint"
        )
        path.write_bytes(original)
    assert source_closure.source_fingerprint(module, package_dir=package) == fingerprint


# ---------------------------------------------------------------- data roots


def config_loader(env: str, **runtime_params) -> OmegaConfigLoader:
    from audioscope_kedro.settings import CONFIG_LOADER_ARGS

    return OmegaConfigLoader(
        str(PROJECT_ROOT / "conf"), env=env, runtime_params=runtime_params, **CONFIG_LOADER_ARGS
    )


def data_root(env: str) -> str:
    return config_loader(env)["globals"]["data_root"].rstrip("/")


def catalog_paths(env: str, **runtime_params) -> dict[str, str]:
    """dataset -> its resolved filepath/path (those of a PartitionedDataset included)."""
    catalog = config_loader(env, **runtime_params)["catalog"]
    return {
        name: entry.get("filepath", entry.get("path"))
        for name, entry in catalog.items()
        if entry.get("filepath", entry.get("path")) is not None
    }


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root + "/")


@pytest.mark.parametrize("env", ENVS)
def test_each_environment_writes_under_its_own_data_root(env):
    """`kedro run --env test` must not overwrite the demo's data (nor a real run's)."""
    root = data_root(env)
    others = {data_root(e) for e in ENVS if e != env}
    assert root not in others, f"conf/{env} shares its data root {root} with another env"
    deeper = [r for r in others if _under(r, root)]  # data/ holds data/demo/ and data/test/
    paths = catalog_paths(env)
    assert paths
    for name, path in paths.items():
        assert _under(path, root), f"--env {env}: {name} at {path} is not under {root}"
        assert not any(_under(path, r) for r in deeper), f"--env {env}: {name} at {path}"
    params = config_loader(env)["parameters"]
    globals_ = config_loader(env)["globals"]
    for key in ("demo_root", "video_root", "lists_dir"):
        # globals are resolved per environment before the merge: an env that sets data_root
        # must restate these (conf/base/globals.yml says so)
        assert _under(globals_[key], root), f"conf/{env}/globals.yml: restate {key}"
    assert params["ingest"]["video_root"] == globals_["video_root"]
    assert params["tune"]["storage"] == f"sqlite:///{root}/07_model_output/optuna.db"


def test_runtime_params_still_override_the_data_paths():
    paths = catalog_paths("demo", demo_root="/tmp/demo_set", lists_dir="/tmp/lists")
    assert paths["demo_stem_manifest"] == "/tmp/demo_set/stems.csv"
    assert paths["audioscope_lists"] == "/tmp/lists"
    params = config_loader("demo", video_root="/tmp/videos")["parameters"]
    assert params["ingest"]["video_root"] == "/tmp/videos"


def _stage_paths(stage: dict) -> tuple[list[str], list[str]]:
    """(data deps, outputs: outs, metrics and plots) of a dvc.yaml stage."""
    prefix = source_closure.code_prefix()
    deps = [d for d in stage.get("deps", []) if not (d + "/").startswith(prefix)]
    outs = []
    for key in ("outs", "metrics", "plots"):
        for entry in stage.get(key, []):
            outs.extend(entry if isinstance(entry, dict) else [entry])
    return deps, outs


def _related(a: str, b: str) -> bool:
    """One path is the other, or inside it (a folder dataset and the files DVC tracks in it)."""
    return _under(a, b) or _under(b, a)


def tuning_outputs(env: str) -> dict[str, str]:
    """Catalog paths the `tune` pipeline writes, in ``env``."""
    configure_project("audioscope_kedro")
    paths = catalog_paths(env)
    tune = find_pipelines(raise_errors=True)["tune"]
    return {d: paths[d] for d in tune.all_outputs() if d in paths}


@pytest.fixture(scope="module")
def stage_datasets() -> dict[str, tuple[dict[str, str], dict[str, str]]]:
    """stage -> (catalog paths its pipeline reads, catalog paths it writes), in the stage's env."""
    configure_project("audioscope_kedro")
    pipelines = find_pipelines(raise_errors=True)
    out = {}
    for name, stage in STAGES.items():
        pipeline_name, env = source_closure.stage_run(stage["cmd"])
        pipeline, paths = pipelines[pipeline_name], catalog_paths(env)
        written = {d: paths[d] for d in pipeline.all_outputs() if d in paths}
        read = {d: paths[d] for d in pipeline.inputs() if d in paths}
        out[name] = (read, written)
    return out


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_data_paths_are_what_its_pipeline_reads_and_writes(name, stage_datasets):
    """dvc.yaml's data paths are the catalog paths of the stage's `kedro run --env <env>`:
    under that env's data root; an out for every dataset the pipeline writes and nothing else;
    a dep for every dataset it reads that another stage writes, and nothing else."""
    pipeline, env = source_closure.stage_run(STAGES[name]["cmd"])
    root = data_root(env)
    deps, outs = _stage_paths(STAGES[name])
    read, written = stage_datasets[name]
    produced = {p for other, (_, w) in stage_datasets.items() if other != name for p in w.values()}
    # `tune` is no stage (a study is started deliberately), but `train` reads its result from a
    # folder kept in git (.gitkeep), so that the dependency exists before any study ran
    produced |= set(tuning_outputs(env).values())
    needed = {d: p for d, p in read.items() if any(_related(p, q) for q in produced)}
    for path in deps + outs:
        assert _under(path, root), f"dvc.yaml stage {name}: {path} is not under {root}"
    for dataset, path in written.items():
        assert any(_related(path, o) for o in outs), (
            f"dvc.yaml stage {name}: no out for {dataset} ({path}), which it writes"
        )
    for path in outs:
        assert any(_related(path, p) for p in written.values()), (
            f"dvc.yaml stage {name}: out {path} is no dataset its pipeline writes"
        )
    for dataset, path in needed.items():
        assert any(_related(path, d) for d in deps), (
            f"dvc.yaml stage {name}: no dep for {dataset} ({path}), which another stage writes"
        )
    for path in deps:
        assert any(_related(path, p) for p in needed.values()), (
            f"dvc.yaml stage {name}: dep {path} is no dataset its pipeline reads"
        )


def test_top_level_plots_are_stage_outputs():
    outs = {o for stage in STAGES.values() for o in _stage_paths(stage)[1]}
    for entry in DVC_YAML.get("plots", []):
        for plot in entry.values():
            for path in plot.get("y", {}):
                assert path in outs, f"dvc.yaml plots: {path} is no stage output"


# ---------------------------------------------------------------- dvc repro


def _dvc(args: list[str], cwd: Path) -> str:
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "KEDRO_DISABLE_TELEMETRY": "true",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


@pytest.mark.slow
def test_dvc_repro_tiny_chain(tmp_path):
    """A copy of the repository whose stages run the `test` environment: `dvc repro` runs
    everything, a second one nothing, and a training parameter reruns train -> evaluate only."""
    repo = tmp_path / "repo"
    files = subprocess.run(
        ["git", "ls-files"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for rel in files:
        if (PROJECT_ROOT / rel).is_file():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_ROOT / rel, repo / rel)
    # the stages' paths move from the demo data root to the test one with the environment
    demo_root, test_root = data_root("demo"), data_root("test")
    text = (repo / "dvc.yaml").read_text().replace("--env demo", "--env test")
    (repo / "dvc.yaml").write_text(text.replace(f"{demo_root}/", f"{test_root}/"))
    (repo / "dvc.lock").unlink(missing_ok=True)  # a committed lock would be the demo env's
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "copy"],
        cwd=repo,
        check=True,
    )

    assert not (repo / "dvc.lock").exists()  # a fresh clone: no lock file, every stage runs
    first = _dvc(["repro"], repo)
    for stage in STAGES:
        assert f"Running stage '{stage}'" in first
    assert (repo / test_root / "08_reporting/metrics.json").exists()
    # the test env leaves the demo's data alone (the demo root holds only what git keeps)
    assert not [p for p in (repo / demo_root).rglob("*") if p.is_file() and p.name != ".gitkeep"]
    assert "up to date" in _dvc(["status"], repo)
    second = _dvc(["repro"], repo)
    assert "Running stage" not in second

    params = repo / "conf/base/parameters_train.yml"
    params.write_text(
        params.read_text().replace("classification_weight: 1.0", "classification_weight: 0.5")
    )
    third = _dvc(["repro"], repo)
    ran = {s for s in STAGES if f"Running stage '{s}'" in third}
    assert ran == {"train", "calibrate", "evaluate"}
    assert "metrics.json" in _dvc(["metrics", "show"], repo)
    _dvc(["plots", "show", "-o", str(tmp_path / "plots")], repo)
    page = (tmp_path / "plots/index.html").read_text()
    assert "cdn.jsdelivr" not in page and "vega" in page
