"""dvc.yaml against the pipelines, and `dvc repro` of the tiny chain in a copy of the repo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kedro.framework.project import configure_project, find_pipelines

from tests.conftest import PROJECT_ROOT

DVC_YAML = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())
STAGES = DVC_YAML["stages"]


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


@pytest.mark.parametrize(
    "name",
    ["demo_data", "ingest", "coincidence", "pretrain_audio", "train", "calibrate", "evaluate"],
)
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
    text = (repo / "dvc.yaml").read_text().replace("--env demo", "--env test")
    (repo / "dvc.yaml").write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "copy"],
        cwd=repo,
        check=True,
    )

    first = _dvc(["repro"], repo)
    for stage in STAGES:
        assert f"Running stage '{stage}'" in first
    assert (repo / "data/08_reporting/metrics.json").exists()
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
