"""Distributed training under ``torchrun``: the entry point that every worker runs.

One machine, 2 processes::

    torchrun --standalone --nproc-per-node 2 -m audioscope_kedro.distributed train --env demo

Several machines (run on each; ``HOST:PORT`` on the first one, reachable from the others)::

    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29400 \\
        --rdzv-id my-run -m audioscope_kedro.distributed train --env demo

The main worker (rank 0) runs the pipeline as ``kedro run --pipeline <name>`` would, once:
one Kedro session, its hooks, its catalog writing the outputs; when it reaches the training
node, that node trains in line as one of the workers. Every other worker loads the training
node's inputs from the same catalog and runs the same node function, which joins the others
in the training, and then exits: it writes nothing (no checkpoint, curve, model or metric).
The data and the project folder must be readable by every worker (on several machines: a
shared file system); only the main worker's machine needs to be able to write.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import OmegaConf

from audioscope_kedro import device as devices

# the node of each pipeline that every worker runs (the rest run on the main worker only)
TRAINING_NODES = {
    "coincidence": "train_coincidence_models",
    "pretrain_audio": "pretrain_separator",
    "train": "train_audioscope",
}


def parse_params(items: str | None) -> dict:
    """``--params`` as ``kedro run`` reads it: ``a.b=1,c=x`` -> ``{"a": {"b": 1}, "c": "x"}``."""
    if not items:
        return {}
    dot_list = []
    for item in items.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--params: {item!r} is not KEY=VALUE")
        dot_list.append(f"{key.strip()}={value}")
    return OmegaConf.to_container(OmegaConf.from_dotlist(dot_list))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="torchrun [torchrun options] -m audioscope_kedro.distributed",
        description="Run a training pipeline on the workers torchrun started (DDP).",
    )
    p.add_argument("pipeline", choices=sorted(TRAINING_NODES))
    p.add_argument("--env", default=None, help="Kedro configuration environment (as kedro run)")
    p.add_argument("--params", default=None, help="runtime parameters, as kedro run: a.b=1,c=x")
    p.add_argument("--project", default=".", help="the Kedro project folder (default: here)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not devices.launched():
        print(
            "audioscope_kedro.distributed is started by torchrun (see its --help); "
            f"for one process run: kedro run --pipeline {args.pipeline}",
            file=sys.stderr,
        )
        return 2
    from kedro.framework.project import pipelines
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    project = Path(args.project).resolve()
    bootstrap_project(project)
    session = KedroSession.create(
        project_path=project, env=args.env, runtime_params=parse_params(args.params) or None
    )
    try:
        with session:
            if devices.is_main():
                session.run(pipeline_names=[args.pipeline])
            else:
                catalog = session.load_context().catalog
                [node] = pipelines[args.pipeline].only_nodes(TRAINING_NODES[args.pipeline]).nodes
                node.run({name: catalog.load(name) for name in node.inputs})
    finally:
        devices.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
