"""Generate the Python code of the gRPC contracts in ``schemas/`` (``python -m schemas.protogen``).

The generated ``*_pb2.py``, ``*_pb2_grpc.py`` and ``*_pb2.pyi`` are committed beside their
``.proto``. They are produced from the repository root with ``-I.``, so the proto's own path is
``schemas/<name>.proto`` and the generated gRPC module imports ``from schemas import <name>_pb2``:
the code works as ``schemas.executor_pb2`` without touching ``sys.path``.

``--check`` regenerates into a temporary directory and exits 1 if anything differs from the
committed files, naming them; CI and a unit test run it so the code never drifts from its
``.proto`` (or from the pinned ``grpcio-tools``, whose versions the generated code records).
"""

from __future__ import annotations

import argparse
import difflib
import sys
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTOS = ("schemas/executor.proto",)
SUFFIXES = ("_pb2.py", "_pb2_grpc.py", "_pb2.pyi")


class ProtogenError(RuntimeError):
    """protoc failed, or grpcio-tools is not installed."""


def outputs(proto: str) -> list[str]:
    """The generated files of one proto, relative to the repository root."""
    stem = proto.removesuffix(".proto")
    return [stem + suffix for suffix in SUFFIXES]


def generate(out_dir: Path, root: Path = REPO_ROOT, protos: Sequence[str] = PROTOS) -> list[Path]:
    """Run protoc with the fixed options, writing under ``out_dir``; returns the files written."""
    try:
        from grpc_tools import protoc
    except ImportError as exc:  # a dev dependency, not a runtime one
        raise ProtogenError("grpcio-tools is not installed: pip install -e '.[test]'") from exc
    well_known = resources.files("grpc_tools") / "_proto"
    written: list[Path] = []
    for proto in protos:
        args = [
            "grpc_tools.protoc",
            f"-I{root}",
            f"-I{well_known}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            f"--pyi_out={out_dir}",
            str(root / proto),
        ]
        code = protoc.main(args)
        if code != 0:
            raise ProtogenError(f"protoc failed on {proto} (exit {code})")
        written += [out_dir / rel for rel in outputs(proto)]
    return written


def check(root: Path = REPO_ROOT, protos: Sequence[str] = PROTOS) -> list[str]:
    """Regenerate into a temporary directory; the problems found (empty when all is current)."""
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="plba-protogen-") as tmp:
        for proto in protos:
            (Path(tmp) / proto).parent.mkdir(parents=True, exist_ok=True)
        generate(Path(tmp), root, protos)
        for proto in protos:
            for rel in outputs(proto):
                fresh = (Path(tmp) / rel).read_text()
                committed_path = root / rel
                if not committed_path.exists():
                    problems.append(f"{rel}: missing (run python -m schemas.protogen)")
                    continue
                committed = committed_path.read_text()
                if fresh != committed:
                    diff = difflib.unified_diff(
                        committed.splitlines(), fresh.splitlines(), f"{rel} (committed)", f"{rel} (fresh)", lineterm=""
                    )
                    head = "\n".join(list(diff)[:20])
                    problems.append(f"{rel}: differs from a fresh generation (run python -m schemas.protogen)\n{head}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m schemas.protogen", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if regenerating would change anything")
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = check()
            for problem in problems:
                print(problem, file=sys.stderr)
            if problems:
                return 1
            print(f"generated code is current: {', '.join(PROTOS)}")
            return 0
        for path in generate(REPO_ROOT):
            print(f"wrote {path.relative_to(REPO_ROOT)}")
    except ProtogenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
