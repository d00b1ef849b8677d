"""One coincidence model (fold 0) trained on a demo environment's clip store, with overrides of
the ``coincidence`` parameter block, printing its curve: training loss and accuracy against the
held-out AUC (pairs of clips it never trained on). A quick probe of whether the audio-visual
embeddings learn synchrony on a dataset, or memorise it (docs/demo_real_training.md).

    .venv/bin/python benchmarks/coincidence_probe.py --env demo_real --threads 1 \\
        loop.learning_rate=0.001 loop.steps=2000

Needs the environment's ``ingest`` to have run. Checkpoints go to a temporary folder (nothing
in ``data/`` is touched), so every run trains from scratch.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def override(block: dict, assignments: list[str]) -> dict:
    """``block`` with ``a.b.c=value`` assignments (values parsed as YAML) laid over it."""
    from audioscope_kedro.parameters import merge

    for item in assignments:
        key, value = item.split("=", 1)
        patch: dict = {}
        cursor = patch
        *path, last = key.split(".")
        for part in path:
            cursor = cursor.setdefault(part, {})
        cursor[last] = yaml.safe_load(value)
        block = merge(block, patch)
    return block


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="demo_real", help="Kedro environment (its clip store)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "overrides", nargs="*", help="coincidence.* assignments, e.g. loop.steps=2000"
    )
    args = parser.parse_args()
    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
    torch.set_num_threads(args.threads)
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from audioscope_kedro.parameters import parse
    from audioscope_kedro.training.checkpoints import CheckpointStore
    from audioscope_kedro.training.coincidence import (
        CoincidenceParams,
        train_fold,
        training_folds,
    )

    bootstrap_project(ROOT)
    with KedroSession.create(project_path=ROOT, env=args.env) as session:
        context = session.load_context()
        store, params = context.catalog.load("clip_store"), context.params
    block = override(dict(params["coincidence"]), args.overrides)
    settings = parse(CoincidenceParams, block, "coincidence")
    folds = training_folds(store, settings, params["clip_seconds"])
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        _, curve = train_fold(
            store, CheckpointStore(Path(tmp)), settings, params["clip_seconds"], folds, 0
        )
    columns = ["step", "train_loss", "train_accuracy", "val_auc_roc"]
    print(f"{args.env}, fold 0, overrides {args.overrides or 'none'}")
    print(curve[columns].round(3).to_string(index=False))
    print(f"{(time.perf_counter() - start) / 60:.1f} minutes")


if __name__ == "__main__":
    main()
