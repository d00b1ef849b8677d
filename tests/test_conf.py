"""Configuration without repetition: conf/demo holds only what differs from conf/base, and
`clip_seconds` is set in one place."""

from __future__ import annotations

import pytest
import yaml

from tests.helpers import PROJECT_ROOT


def _leaves(tree, prefix=()):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _leaves(value, (*prefix, key))
    else:
        yield prefix, tree


def _lookup(tree, path):
    for part in path:
        if not isinstance(tree, dict) or part not in tree:
            return KeyError
        tree = tree[part]
    return tree


@pytest.mark.parametrize(
    "file", sorted(p.name for p in (PROJECT_ROOT / "conf/demo").glob("parameters*.yml"))
)
def test_demo_overrides_only_what_differs(file):
    demo = yaml.safe_load((PROJECT_ROOT / "conf/demo" / file).read_text())
    base = yaml.safe_load((PROJECT_ROOT / "conf/base" / file).read_text())
    for path, value in _leaves(demo):
        found = _lookup(base, path)
        assert found is not KeyError, f"conf/demo/{file}: {'.'.join(path)} is not in conf/base"
        assert found != value, f"conf/demo/{file}: {'.'.join(path)} repeats conf/base ({value!r})"


def test_clip_seconds_is_set_once():
    hits = [
        (p.relative_to(PROJECT_ROOT), path)
        for p in sorted((PROJECT_ROOT / "conf").rglob("parameters*.yml"))
        for path, _ in _leaves(yaml.safe_load(p.read_text()) or {})
        if path[-1] in ("clip_seconds", "duration")
    ]
    assert {str(f.parent.name) for f, _ in hits} <= {"base", "test"}
    assert all(path == ("clip_seconds",) for _, path in hits), hits
