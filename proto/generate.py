"""Regenerate the checked-in protobuf and gRPC stubs: `make proto` (or `python -m potluck.proto.generate`).

The .proto files are compiled under the virtual include path `potluck/proto/`, so the
generated modules import each other as `potluck.proto.…` and their descriptor names
cannot clash with hivemind's flat ones (`dht.proto`, `crypto.proto`, …).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from importlib.resources import files
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent
VIRTUAL_ROOT = "potluck/proto"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def proto_files() -> list[Path]:
    return sorted(PROTO_DIR.glob("*.proto"))


def generate(out_dir: Path) -> list[Path]:
    """Compile every .proto in this folder into `out_dir`; return the files written."""
    from grpc_tools import protoc

    well_known = str(files("grpc_tools") / "_proto")
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "grpc_tools.protoc",
            f"-I{VIRTUAL_ROOT}={PROTO_DIR}",
            f"-I{well_known}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *(f"{VIRTUAL_ROOT}/{p.name}" for p in proto_files()),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError("protoc failed; see the messages above")
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for produced in sorted((Path(tmp) / VIRTUAL_ROOT).iterdir()):
            # grpc's plugin writes a _pb2_grpc.py for every file; keep only those with services.
            is_empty_grpc = produced.name.endswith("_pb2_grpc.py") and "class " not in produced.read_text()
            if produced.name.endswith(GENERATED_SUFFIXES) and not is_empty_grpc:
                target = out_dir / produced.name
                shutil.copyfile(produced, target)
                written.append(target)
        return written


def main() -> int:
    for path in generate(PROTO_DIR):
        print(path.relative_to(PROTO_DIR.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
