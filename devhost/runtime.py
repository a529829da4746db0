"""Drives azure-functions-runtime-v1 with the messages the Functions host sends it.

On Azure the Python worker's gRPC dispatcher receives ``StreamingMessage``s
from the host and passes each one, wrapped with a ``protos`` namespace, to the
runtime's coroutines. This module plays the host's and the dispatcher's part
in-process: same messages, same order (init, metadata, one load per function,
one invocation per request), no gRPC in between.
"""

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import azure_functions_runtime_v1 as runtime

from devhost.app_index import FunctionSpec

HOST_VERSION = "4.0.0-devhost"
# The HTTP conversion in devhost.http_mapping assumes the worker asked for these,
# as runtime 1.2.0 does; if a runtime stops asking, that mapping must change.
REQUIRED_CAPABILITIES = ("RawHttpBodyBytes", "RpcHttpBodyOnly", "RpcHttpTriggerMetadataRemoved")


@dataclass
class _WorkerRequest:
    """The shape the runtime's coroutines read: ``.request`` and ``.properties``."""

    name: str
    request: Any
    properties: dict[str, Any] = field(default_factory=dict)


class LoadError(Exception):
    """The runtime refused a function; the message is the runtime's own reason."""


class RuntimeDriver:
    """One app's session with the runtime, which keeps its state in module globals."""

    def __init__(self, protos: ModuleType) -> None:
        self.protos = protos
        self.capabilities: dict[str, str] = {}

    async def _send(self, name: str, properties: dict[str, Any] | None = None, **content: Any):
        message = self.protos.StreamingMessage(request_id=str(uuid.uuid4()), **content)
        handler = getattr(runtime, name)
        return await handler(_WorkerRequest(name, message, properties or {}))

    def _check(self, result: Any, what: str) -> None:
        if result.status != self.protos.StatusResult.Success:
            raise RuntimeError(f"{what} failed: {result.exception.message}")

    async def start(self, app_dir: str) -> None:
        """Start the thread pool, then the init and metadata exchange, as the worker does."""
        runtime.start_threadpool_executor()
        init = await self._send(
            "worker_init_request",
            {"protos": self.protos, "host": "127.0.0.1"},
            worker_init_request=self.protos.WorkerInitRequest(
                host_version=HOST_VERSION, function_app_directory=app_dir
            ),
        )
        self._check(init.result, "worker init")
        self.capabilities = dict(init.capabilities)
        missing = [c for c in REQUIRED_CAPABILITIES if self.capabilities.get(c) != "true"]
        if missing:
            raise RuntimeError(f"the runtime no longer declares {missing}; update devhost")
        metadata = await self._send(
            "functions_metadata_request",
            functions_metadata_request=self.protos.FunctionsMetadataRequest(
                function_app_directory=app_dir
            ),
        )
        self._check(metadata.result, "functions metadata")
        if not metadata.use_default_metadata_indexing:
            raise RuntimeError("the runtime indexes functions itself; devhost only hosts v1 apps")

    def _metadata(self, spec: FunctionSpec, function_id: str) -> Any:
        protos = self.protos
        info = protos.BindingInfo
        data_types = ("string", "binary", "stream")
        bindings = {
            b.name: info(
                type=b.type,
                direction=info.Direction.Value(b.direction),
                data_type=info.DataType.Value(
                    dt if (dt := (b.data_type or "").lower()) in data_types else "undefined"
                ),
            )
            for b in spec.bindings
        }
        return protos.RpcFunctionMetadata(
            name=spec.name,
            function_id=function_id,
            directory=str(spec.directory),
            script_file=str(spec.script_file),
            entry_point=spec.entry_point,
            bindings=bindings,
            raw_bindings=[json.dumps(b.raw) for b in spec.bindings],
            language="python",
        )

    async def load(self, spec: FunctionSpec) -> str:
        """Send the function's load request; returns its function id or raises LoadError."""
        function_id = str(uuid.uuid4())
        response = await self._send(
            "function_load_request",
            function_load_request=self.protos.FunctionLoadRequest(
                function_id=function_id, metadata=self._metadata(spec, function_id)
            ),
        )
        if response.result.status != self.protos.StatusResult.Success:
            raise LoadError(response.result.exception.message)
        return function_id

    async def invoke(self, invocation: Any) -> Any:
        """Run one InvocationRequest; the runtime reports a raising function as Failure."""
        return await self._send("invocation_request", invocation_request=invocation)

    async def stop(self) -> None:
        """Stop the runtime's thread pool, letting running sync functions finish."""
        await asyncio.to_thread(runtime.stop_threadpool_executor)
