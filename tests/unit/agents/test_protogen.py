"""The committed gRPC code is what the .proto generates today, and imports as schemas.*."""

from __future__ import annotations

import pytest

pytest.importorskip("grpc_tools")


def test_regenerating_changes_nothing():
    from schemas.protogen import check

    assert check() == []


def test_check_notices_drift(tmp_path):
    import shutil

    from schemas.protogen import REPO_ROOT, check, outputs

    (tmp_path / "schemas").mkdir()
    shutil.copy(REPO_ROOT / "schemas" / "executor.proto", tmp_path / "schemas" / "executor.proto")
    for rel in outputs("schemas/executor.proto"):
        shutil.copy(REPO_ROOT / rel, tmp_path / rel)
    assert check(tmp_path) == []
    grpc_file = tmp_path / "schemas" / "executor_pb2_grpc.py"
    grpc_file.write_text(grpc_file.read_text() + "\n# edited by hand\n")
    problems = check(tmp_path)
    assert len(problems) == 1 and problems[0].startswith("schemas/executor_pb2_grpc.py: differs")


def test_generated_code_imports_as_the_schemas_package():
    from schemas import executor_pb2, executor_pb2_grpc

    assert executor_pb2.DESCRIPTOR.package == "plba.executor.v1"
    assert executor_pb2.DESCRIPTOR.name == "schemas/executor.proto"
    assert executor_pb2_grpc.schemas_dot_executor__pb2 is executor_pb2
    service = executor_pb2.DESCRIPTOR.services_by_name["Executor"]
    assert sorted(m.name for m in service.methods) == sorted(
        [
            "StartWorkload",
            "StopWorkload",
            "ListWorkloads",
            "GetUsage",
            "Migrate",
            "PrepareIncoming",
            "Transfer",
            "Switch",
            "Commit",
            "Abort",
            "MigrationStatus",
        ]
    )
    migrate = service.methods_by_name["Migrate"]
    transfer = service.methods_by_name["Transfer"]
    assert (migrate.client_streaming, migrate.server_streaming) == (False, True)
    assert (transfer.client_streaming, transfer.server_streaming) == (True, False)
