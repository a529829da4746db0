"""The Functions host <-> language worker protobuf messages, as the runtime expects them.

azure-functions-runtime-v1 does not import protobuf modules itself: the worker
hands it a ``protos`` namespace at init and the runtime builds every response
with it (``protos.InvocationResponse``, ``protos.RpcHttpCookie``,
``protos.NullableString``, ...). The generated modules ship inside the runtime's
own wheel, under a top-level ``tests/protos`` folder that it installs into
site-packages.

That stray top-level ``tests`` package collides with this project's ``tests/``
and its ``__init__.py`` imports grpc, which is not installed. So it is never
imported as ``tests``: the folder is located through the distribution's
metadata and mounted under a private package name whose ``__init__.py`` is never
executed; only the generated ``*_pb2`` modules (which import their siblings
relatively) are loaded from it.
"""

import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

_DISTRIBUTION = "azure-functions-runtime-v1"
_PROTOS_DIR = "tests/protos"
_PACKAGE = "devhost._worker_protos"
_MODULES = ("FunctionRpc_pb2", "shared.NullableTypes_pb2")


@cache
def load_protos() -> ModuleType:
    """Return one namespace holding every message type the runtime builds or reads."""
    folder = Path(str(importlib.metadata.distribution(_DISTRIBUTION).locate_file(_PROTOS_DIR)))
    if not (folder / "FunctionRpc_pb2.py").is_file():
        raise RuntimeError(
            f"{_DISTRIBUTION} no longer ships its generated protobuf modules in {_PROTOS_DIR}"
        )
    spec = importlib.machinery.ModuleSpec(_PACKAGE, None, is_package=True)
    package = importlib.util.module_from_spec(spec)
    package.__path__ = [str(folder)]
    sys.modules[_PACKAGE] = package
    # Like the worker's own protos package: one flat namespace over the modules.
    for name in _MODULES:
        module = importlib.import_module(f"{_PACKAGE}.{name}")
        for attr, value in vars(module).items():
            if not attr.startswith("_") and isinstance(value, type):
                setattr(package, attr, value)
    return package
