"""Safe loading and serving: a checkpoint that carries a pickled object is refused everywhere
a checkpoint is read, without running it; the source has no unsafe load (audited below, so a
new one fails the suite); dashboards and servers the project documents bind to 127.0.0.1.
"""

from __future__ import annotations

import ast
import json
import pathlib
import re
from pathlib import Path

import pytest
import torch

from audioscope_kedro import command
from audioscope_kedro.models.audioscope import AudioScope
from audioscope_kedro.models.embeddings import ImageEmbedding
from audioscope_kedro.models.persistence import (
    CHECKSUM_KEY,
    ModelFolderError,
    file_sha256,
    load_model,
)
from audioscope_kedro.release import ReleasedModel
from audioscope_kedro.training.checkpoints import CheckpointStore
from tests.helpers import PROJECT_ROOT, TINY_MEDIA, tiny_config

SRC = PROJECT_ROOT / "src" / "audioscope_kedro"


class Payload:
    """Unpickled, it writes ``marker``: what a hostile file would do with ``os.system``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.write_text, (self.marker, "the payload ran"))


def hostile(path: Path, marker: Path, state: dict | None = None) -> Path:
    """``torch.save`` of a state_dict-like mapping with the payload beside the tensors."""
    torch.save({**(state or {}), "payload": Payload(marker)}, path)
    return path


def test_the_payload_is_live(tmp_path):
    """The control: loaded the unsafe way, the file does run code. Every refusal below is a
    refusal of a working exploit, not of a file that would be harmless anyway."""
    marker = tmp_path / "ran.txt"
    path = hostile(tmp_path / "x.pt", marker)
    torch.load(path, weights_only=False)
    assert marker.read_text() == "the payload ran"


@pytest.fixture
def hostile_release(tmp_path) -> tuple[Path, Path]:
    """A released-looking folder whose ``model.pt`` carries the payload beside the real
    weights, with a config.json whose checksum matches that file (so the refusal is
    ``weights_only``'s, not the checksum's)."""
    folder, marker = tmp_path / "model", tmp_path / "ran.txt"
    model = AudioScope(tiny_config(clip_seconds=1.0, media=TINY_MEDIA))
    model.save(folder)
    hostile(folder / "model.pt", marker, model.state_dict())
    config = json.loads((folder / "config.json").read_text())
    config[CHECKSUM_KEY] = file_sha256(folder / "model.pt")
    (folder / "config.json").write_text(json.dumps(config))
    return folder, marker


def test_model_folders_refuse_a_pickled_object(hostile_release):
    folder, marker = hostile_release
    for load in (lambda: load_model(folder), lambda: ReleasedModel.load(folder)):
        with pytest.raises(ModelFolderError, match="holds more than weights .* refused"):
            load()
    assert not marker.exists()


@pytest.mark.parametrize("subcommand", ["separate", "evaluate"])
def test_the_command_refuses_a_pickled_object(hostile_release, tmp_path, subcommand, capsys):
    folder, marker = hostile_release
    args = {
        "separate": ["separate", str(tmp_path / "clip.mp4")],
        "evaluate": ["evaluate", "--video-root", str(tmp_path), "--on-mom", "a.csv"]
        + ["--off-mom", "b.csv"],
    }[subcommand]
    assert command.main([*args, "--model", str(folder), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("audioscope: ") and "holds more than weights" in err
    assert not marker.exists()


def test_training_checkpoints_skip_a_pickled_object(tmp_path):
    """A resumed run never unpickles an object: the hostile newest checkpoint is passed over
    for the last complete one before it."""
    store = CheckpointStore(tmp_path / "checkpoints")
    store.save(100, {"step": 100, "model": {"w": torch.ones(2)}})
    marker = tmp_path / "ran.txt"
    hostile(tmp_path / "checkpoints" / "step-0000200.pt", marker, {"step": torch.tensor(200)})
    assert store.latest()["step"] == 100
    assert not marker.exists()


def test_image_weights_refuse_a_pickled_object(tmp_path):
    network = ImageEmbedding(tiny_config().embedding)
    marker = tmp_path / "ran.txt"
    path = hostile(tmp_path / "image.pt", marker, network.state_dict())
    with pytest.raises(Exception, match="Weights only load failed"):
        network.load_weights(path)
    assert not marker.exists()


# ----------------------------------------------------------------------------- the audit

# Deserialisers that can run code, and where the project may use them: only on data that this
# run itself created. training/launch.py unpickles the result its own main worker pickled
# (elastic_launch hands it back through the launching process); nothing read from disk.
PICKLE_ALLOWED = {"training/launch.py": "the main worker's result, pickled by this run"}
UNSAFE_CALLS = {
    ("pickle", "load"),
    ("pickle", "loads"),
    ("pickle", "Unpickler"),
    ("pd", "read_pickle"),
    ("pandas", "read_pickle"),
    ("joblib", "load"),
    ("dill", "load"),
    ("dill", "loads"),
    ("cloudpickle", "load"),
    ("cloudpickle", "loads"),
    ("marshal", "loads"),
    ("shelve", "open"),
    ("yaml", "load"),
    ("yaml", "unsafe_load"),
}


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
            yield name, node.func.attr, node


def _keyword(node: ast.Call, name: str):
    for kw in node.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else kw.value
    return None


def audit(root: Path) -> list[str]:
    """Every unsafe load under ``root``: ``torch.load`` without a literal
    ``weights_only=True``, ``np.load`` with ``allow_pickle`` anything but a literal False, and
    the deserialisers of :data:`UNSAFE_CALLS` outside :data:`PICKLE_ALLOWED`."""
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for owner, attr, node in _calls(ast.parse(path.read_text(), str(path))):
            where = f"{rel}:{node.lineno}"
            if (owner, attr) == ("torch", "load") and _keyword(node, "weights_only") is not True:
                found.append(f"{where}: torch.load without weights_only=True")
            elif owner in ("np", "numpy") and attr == "load":
                if _keyword(node, "allow_pickle") not in (None, False):
                    found.append(f"{where}: np.load with allow_pickle")
            elif (owner, attr) in UNSAFE_CALLS and rel not in PICKLE_ALLOWED:
                found.append(f"{where}: {owner}.{attr}")
    return found


def test_the_source_loads_nothing_unsafely():
    assert audit(SRC) == []
    assert (SRC / "training/launch.py").exists()  # the one allowed use is where it is said


def test_the_audit_finds_what_it_looks_for(tmp_path):
    """The audit itself, on a module with each unsafe call (a test that always passes would
    prove nothing)."""
    (tmp_path / "bad.py").write_text(
        "import pickle, torch, numpy as np\n"
        "torch.load('a')\n"
        "torch.load('a', weights_only=False)\n"
        "torch.load('a', weights_only=True)\n"
        "np.load('a', allow_pickle=True)\n"
        "np.load('a')\n"
        "pickle.loads(b'')\n"
    )
    assert audit(tmp_path) == [
        "bad.py:2: torch.load without weights_only=True",
        "bad.py:3: torch.load without weights_only=True",
        "bad.py:5: np.load with allow_pickle",
        "bad.py:7: pickle.loads",
    ]


# ------------------------------------------------------------------ dashboards and servers

SERVERS = re.compile(r"optuna-dashboard|kedro viz run|http\.server|tensorboard|mlflow ui")
DOCUMENTS = ["README.md", "Makefile", "docs/*.md", "notebooks/*.md", "src/**/*.py", "conf/**/*"]
LOOPBACK = r"(?:127\.0\.0\.1|localhost|::1)\b"


def binds_publicly(line: str) -> bool:
    """A command line of a server that would listen beyond this machine: a host or bind
    address other than loopback, or ``http.server`` without ``--bind`` (it listens on every
    interface by default)."""
    if not SERVERS.search(line):
        return False
    if re.search(rf"(?:--host|--bind|-b)[ =](?!{LOOPBACK})", line):
        return True
    if re.search(r"(?<![\d.])0\.0\.0\.0(?![\d.])", line):
        return True
    return bool(re.search(r"-m http\.server", line)) and not re.search(
        rf"(?:--bind|-b)[ =]{LOOPBACK}", line
    )


def server_lines() -> list[str]:
    """``file:line`` of every documented server command that binds publicly."""
    found = []
    for pattern in DOCUMENTS:
        for path in sorted(PROJECT_ROOT.glob(pattern)):
            if not path.is_file():
                continue
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if binds_publicly(line):
                    found.append(f"{path.relative_to(PROJECT_ROOT)}:{number}")
    return found


def test_documented_servers_bind_to_loopback():
    """Every documented server command binds to 127.0.0.1: ``http.server`` with ``--bind``
    (its default is every interface), the others with ``--host 127.0.0.1`` or their default."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert SERVERS.search(readme)  # the README documents servers: the check is not vacuous
    assert server_lines() == []


def test_the_defaults_relied_on_are_loopback():
    """Where the docs leave ``--host`` out, the tool's own default must be 127.0.0.1."""
    dashboard = pytest.importorskip("optuna_dashboard._config", reason="optuna-dashboard absent")
    assert dashboard.DashboardConfig().host == "127.0.0.1"
    viz = pytest.importorskip("kedro_viz.constants", reason="kedro-viz absent")
    assert viz.DEFAULT_HOST == "127.0.0.1"


def test_the_server_audit_finds_a_public_bind(monkeypatch, tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "x.md").write_text(
        "python -m http.server 8000\n"
        "optuna-dashboard sqlite:///a.db --host 0.0.0.0\n"
        "kedro viz run --host 127.0.0.1\n"
        "tensorboard --logdir runs --bind_all --host=example.org\n"
        "python -m http.server -d build 4142 --bind 127.0.0.1\n"
    )
    monkeypatch.setattr(f"{__name__}.PROJECT_ROOT", tmp_path)
    assert server_lines() == ["docs/x.md:1", "docs/x.md:2", "docs/x.md:4"]
