"""Reads a v1 (function.json) app the way the Functions host indexes it.

For v1 apps the Python runtime answers the metadata request with "use default
indexing": the host itself finds every folder with a function.json, reads its
bindings and sends one load request per function. This module is that
indexing step; a folder whose function.json cannot be used is reported with
the reason instead of stopping the other functions. Triggers it knows: HTTP
(``httpTrigger``) and Queue storage (``queueTrigger``, run by ``devhost.queues``).
"""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_ROUTE_PREFIX = "api"
AUTH_LEVELS = ("anonymous", "function", "admin")
_DIRECTIONS = ("in", "out", "inout")
_TRUE = ("1", "true", "t", "yes", "y")


class AppIndexError(Exception):
    """The app as a whole cannot be hosted (e.g. an unreadable host.json)."""


class FunctionJsonError(Exception):
    """One function's function.json cannot be used."""


@dataclass(frozen=True)
class Binding:
    """One entry of function.json's bindings."""

    name: str
    type: str
    direction: str
    data_type: str | None
    raw: dict[str, Any]


@dataclass(frozen=True)
class HttpTrigger:
    """What the host needs to route requests to a function."""

    param: str
    route: str
    methods: frozenset[str] | None
    auth_level: str


@dataclass(frozen=True)
class QueueTrigger:
    """A ``queueTrigger`` binding, as function.json states it ("Azure Queue storage trigger
    for Azure Functions": ``queueName`` may name an app setting as ``%NAME%``, resolved when
    the host starts; ``connection`` names the setting holding the storage connection)."""

    param: str
    queue_name: str
    connection: str
    binary: bool  # dataType "binary": the body as bytes, else as a string


@dataclass(frozen=True)
class FunctionSpec:
    """A function folder, as sent to the runtime in its load request."""

    name: str
    directory: Path
    script_file: Path
    entry_point: str
    bindings: tuple[Binding, ...]
    http: HttpTrigger | None
    http_output: str | None
    queue: QueueTrigger | None = None


@dataclass
class AppIndex:
    """Everything the host learnt from the app folder."""

    root: Path
    route_prefix: str
    functions: list[FunctionSpec] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    disabled: list[str] = field(default_factory=list)


def host_extension(root: Path, name: str) -> dict[str, Any]:
    """host.json's ``extensions.<name>`` section ({} when host.json or the section is absent
    or no object, as the host ignores it)."""
    path = root / "host.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as exc:
        raise AppIndexError(f"{path} is not valid JSON: {exc}") from exc
    extensions = (document.get("extensions") or {}) if isinstance(document, dict) else {}
    section = extensions.get(name) if isinstance(extensions, dict) else None
    return section if isinstance(section, dict) else {}


def read_route_prefix(root: Path) -> str:
    """host.json's extensions.http.routePrefix ("api" when unset, "" allowed)."""
    http = host_extension(root, "http")
    prefix = http.get("routePrefix", DEFAULT_ROUTE_PREFIX)
    if prefix is None:
        return DEFAULT_ROUTE_PREFIX
    if not isinstance(prefix, str):
        raise AppIndexError(f"{root / 'host.json'}: extensions.http.routePrefix must be a string")
    return prefix.strip("/")


def _is_disabled(name: str, document: dict[str, Any]) -> bool:
    # Azure's ways: the app setting AzureWebJobs.<name>.Disabled, or "disabled" in
    # function.json holding true or the name of an app setting that is true.
    if os.environ.get(f"AzureWebJobs.{name}.Disabled", "").strip().lower() in _TRUE:
        return True
    flag = document.get("disabled", False)
    if isinstance(flag, str):
        return flag.strip().lower() in _TRUE or os.environ.get(flag, "").lower() in _TRUE
    return flag is True


def _binding(raw: Any) -> Binding:
    if not isinstance(raw, dict):
        raise FunctionJsonError("every binding must be a JSON object")
    name, kind = raw.get("name"), raw.get("type")
    if not isinstance(name, str) or not name:
        raise FunctionJsonError("a binding has no name")
    if not isinstance(kind, str) or not kind:
        raise FunctionJsonError(f"binding {name!r} has no type")
    direction = raw.get("direction", "in")
    if not isinstance(direction, str) or direction.lower() not in _DIRECTIONS:
        raise FunctionJsonError(f"binding {name!r} has an invalid direction {direction!r}")
    data_type = raw.get("dataType")
    if data_type is not None and not isinstance(data_type, str):
        raise FunctionJsonError(f"binding {name!r} has an invalid dataType")
    return Binding(name, kind, direction.lower(), data_type, raw)


def _http_trigger(name: str, binding: Binding) -> HttpTrigger:
    route = binding.raw.get("route")
    if route is None:
        route = name
    if not isinstance(route, str):
        raise FunctionJsonError("the httpTrigger route must be a string")
    methods = binding.raw.get("methods")
    if methods is not None and (
        not isinstance(methods, list) or not all(isinstance(m, str) and m for m in methods)
    ):
        raise FunctionJsonError("the httpTrigger methods must be a list of method names")
    level = binding.raw.get("authLevel", "function")
    if not isinstance(level, str) or level.lower() not in AUTH_LEVELS:
        raise FunctionJsonError(f"unsupported httpTrigger authLevel {level!r}")
    return HttpTrigger(
        param=binding.name,
        route=route,
        methods=frozenset(m.upper() for m in methods) if methods else None,
        auth_level=level.lower(),
    )


def _queue_trigger(binding: Binding) -> QueueTrigger:
    queue_name = binding.raw.get("queueName")
    if not isinstance(queue_name, str) or not queue_name.strip():
        raise FunctionJsonError("the queueTrigger needs a queueName")
    # Unset, the host reads the storage connection from AzureWebJobsStorage.
    connection = binding.raw.get("connection") or "AzureWebJobsStorage"
    if not isinstance(connection, str):
        raise FunctionJsonError("the queueTrigger connection must name an app setting")
    return QueueTrigger(binding.name, queue_name.strip(), connection,
                        (binding.data_type or "").lower() == "binary")


def read_function(root: Path, directory: Path, document: Any) -> FunctionSpec:
    """Validate one function.json and resolve what the load request needs."""
    name = directory.name
    if not isinstance(document, dict):
        raise FunctionJsonError("function.json must hold a JSON object")
    raw_bindings = document.get("bindings")
    if not isinstance(raw_bindings, list) or not raw_bindings:
        raise FunctionJsonError("function.json has no bindings")
    bindings = tuple(_binding(raw) for raw in raw_bindings)
    names = [b.name for b in bindings]
    if len(names) != len(set(names)):
        raise FunctionJsonError("two bindings share a name")
    script = document.get("scriptFile", "__init__.py")
    entry_point = document.get("entryPoint", "main")
    if not isinstance(script, str) or not isinstance(entry_point, str):
        raise FunctionJsonError("scriptFile and entryPoint must be strings")
    script_file = (directory / script).resolve()
    if not script_file.is_file():
        raise FunctionJsonError(f"script file {script} not found")
    if not script_file.is_relative_to(root):
        raise FunctionJsonError(f"script file {script} is outside the app folder")
    triggers = [b for b in bindings if b.type.lower() == "httptrigger"]
    queues = [b for b in bindings if b.type.lower() == "queuetrigger"]
    if len(triggers) + len(queues) > 1:
        raise FunctionJsonError("a function has one trigger")
    outputs = [b for b in bindings if b.type.lower() == "http" and b.direction == "out"]
    return FunctionSpec(
        name=name,
        directory=directory,
        script_file=script_file,
        entry_point=entry_point or "main",
        bindings=bindings,
        http=_http_trigger(name, triggers[0]) if triggers else None,
        http_output=outputs[0].name if outputs else None,
        queue=_queue_trigger(queues[0]) if queues else None,
    )


def index_app(root: Path) -> AppIndex:
    """Every function folder of the app, its disabled ones and the ones in error."""
    root = root.resolve()
    index = AppIndex(root=root, route_prefix=read_route_prefix(root))
    for directory in sorted(p for p in root.iterdir() if (p / "function.json").is_file()):
        try:
            document = json.loads((directory / "function.json").read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            index.errors[directory.name] = f"function.json cannot be read: {exc}"
            continue
        if isinstance(document, dict) and _is_disabled(directory.name, document):
            index.disabled.append(directory.name)
            continue
        try:
            index.functions.append(read_function(root, directory, document))
        except FunctionJsonError as exc:
            index.errors[directory.name] = str(exc)
    return index
