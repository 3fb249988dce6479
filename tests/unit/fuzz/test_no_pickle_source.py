"""No module of ours unpickles, and no Faust channel of ours uses the pickle serializer.

A source scan (the AST, so comments and docstrings that mention pickle do not count) over every
package, plus a look at the serializers the built worker and dispatcher apps really use.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PACKAGES = ("plba", "schemas", "streams", "agents")
# Modules whose loading runs code chosen by the data.
UNSAFE_MODULES = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "shelve", "jsonpickle", "marshal"}
UNSAFE_CALLS = {"load", "loads", "Unpickler", "open", "decode", "read_pickle"}


def sources() -> list[Path]:
    files = sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))
    assert len(files) > 20, "the scan found no sources: wrong repository root?"
    return files


def violations(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for every unpickling call and every pickle serializer in ``tree``."""
    found: list[tuple[int, str]] = []
    aliases: dict[str, str] = {}  # local name -> unsafe module it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                root = alias.name.split(".")[0]
                if root in UNSAFE_MODULES:
                    aliases[alias.asname or root] = root
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
            for alias in node.names:
                if alias.name in UNSAFE_CALLS or alias.name == "*":
                    found.append((node.lineno, f"from {node.module} import {alias.name}"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            module = aliases.get(node.value.id)
            if module and node.attr in UNSAFE_CALLS:
                found.append((node.lineno, f"{module}.{node.attr}"))
        # numpy.load(..., allow_pickle=True) and friends
        if isinstance(node, ast.keyword) and node.arg == "allow_pickle":
            allowed = not (isinstance(node.value, ast.Constant) and node.value.value is False)
            if allowed:
                found.append((node.value.lineno, "allow_pickle"))
        # Faust: value_serializer="pickle", serializer="pickle|binary", class M(Record, serializer="pickle")
        pairs: list[tuple[str | None, ast.expr]] = []
        if isinstance(node, ast.keyword):
            pairs.append((node.arg, node.value))
        elif isinstance(node, ast.Dict):
            pairs.extend(
                (k.value if isinstance(k, ast.Constant) and isinstance(k.value, str) else None, v)
                for k, v in zip(node.keys, node.values, strict=True)
            )
        for name, value in pairs:
            text = value.value if isinstance(value, ast.Constant) and isinstance(value.value, str) else ""
            if name and "serializer" in name and "pickle" in text:
                found.append((value.lineno, f"{name}={text!r}"))
    return found


def test_the_scan_catches_what_it_must():
    bad = """
import pickle
import pickle as p2
from pickle import loads
from _pickle import Unpickler
import numpy as np
pickle.loads(b"")
p2.load(f)
np.load("x.npy", allow_pickle=True)
app = faust.App("x", value_serializer="pickle")
opts = {"key_serializer": "pickle|binary"}
class M(faust.Record, serializer="pickle"):
    pass
"""
    found = {what for _line, what in violations(ast.parse(bad))}
    assert found == {
        "from pickle import loads", "from _pickle import Unpickler", "pickle.loads", "pickle.load", "allow_pickle",
        "value_serializer='pickle'", "key_serializer='pickle|binary'", "serializer='pickle'",
    }  # fmt: skip
    fine = '''
"""Snapshots are JSON, never pickle."""
import json
json.loads("{}")
np.load("x.npy", allow_pickle=False)
app = faust.App("x", value_serializer="raw")
'''
    assert violations(ast.parse(fine)) == []


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_module_unpickles(path: Path):
    found = violations(ast.parse(path.read_text(), filename=str(path)))
    assert found == [], f"{path.relative_to(REPO)}: " + ", ".join(f"line {n}: {what}" for n, what in found)


def test_the_faust_apps_read_raw_bytes_only():
    pytest.importorskip("faust")
    from schemas.settings import Settings
    from streams.worker import build_dispatcher, build_worker

    settings = Settings.from_env({})
    apps = [build_worker(settings).app, build_dispatcher(settings)[0]]
    checked = 0
    for app in apps:
        assert (app.conf.key_serializer, app.conf.value_serializer) == ("raw", "raw")
        channels = [agent.channel for agent in app.agents.values()]
        channels += [table.changelog_topic for table in app.tables.values()]
        for channel in channels:
            for effective in (
                channel.key_serializer or app.conf.key_serializer,
                channel.value_serializer or app.conf.value_serializer,
            ):
                described = f"{effective!s} {type(effective).__name__}".lower()
                assert "pickle" not in described, f"{app.conf.id}: {channel} uses {effective!r}"
            checked += 1
    assert checked >= 3
