"""A local Functions host for this v1 Python app, running it on Azure's own runtime.

``FunctionHost`` does what the Functions host (and ``func start``) does for a
Python v1 app: applies local.settings.json, indexes the function.json folders,
has azure-functions-runtime-v1 (the engine Azure runs for Python 3.13) load
each function, then serves the HTTP triggers and listens to the queues of the
queue triggers (``devhost.queues``). Functions that fail to load are logged
with the reason and answer 500; the others serve.

The runtime keeps its state in module globals (function registry, the
``__app__`` package), so there is one host per process; to host several apps,
run several processes of the CLI::

    python -m devhost.host --app-dir . --host 127.0.0.1 --port 7071 \
        [--enforce-keys] [--settings local.settings.json] [--allow-host NAME]

It prints each function's URL, then ``functions host listening on URL``
(flushed; with ``--port 0`` the real port), serves until SIGINT or SIGTERM, and
exits 0.
"""

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

from aiohttp import web

from devhost.app_index import AppIndexError, FunctionSpec, index_app
from devhost.auth import KEY_SETTING
from devhost.host_routes import Control
from devhost.logs import AccessLogger, configure_logging
from devhost.protocol import DevServer
from devhost.protos import load_protos
from devhost.queues import (
    QueueListener,
    QueueTriggerError,
    connection_string,
    read_queue_options,
    resolve_queue_name,
)
from devhost.request_guard import (
    BODY_TIMEOUT_SECONDS,
    HEADER_TIMEOUT_SECONDS,
    MAX_BODY_BYTES,
)
from devhost.routes import RouteTable, RouteTemplate, RouteTemplateError, join_template
from devhost.runtime import LoadError, RuntimeDriver
from devhost.server import FunctionServer, HostedFunction, describe
from devhost.settings_file import AppliedSettings, SettingsError, apply_local_settings
from localhttp.host_policy import HostPolicy

logger = logging.getLogger("devhost")

READY_PREFIX = "functions host listening on"
#: The runtime environment's name, as the Functions host hands it to the worker.
ENVIRONMENT_SETTING = "AZURE_FUNCTIONS_ENVIRONMENT"


class FunctionHost:
    """Loads the app's functions on the Python v1 runtime and serves them over HTTP.

    ``functions`` maps each function folder to its route, methods and authLevel;
    ``load_errors`` maps the ones that did not load to the reason. Settings from
    ``settings_file`` (default: the app's local.settings.json) go into the
    environment first, variables already set winning; ``quiet_settings`` are
    names whose value the caller set on purpose (not reported as overridden).
    Bound to loopback it answers only loopback ``Host`` names, the host of
    ``PUBLIC_BASE_URL`` and ``allowed_hosts`` (``*``: any); see
    ``devhost.request_guard`` for that and for ``max_body`` and the timeouts.
    ``controls``: the host's own routes, ``POST /_devhost/<name>`` (``devhost.host_routes``),
    which answer requests carrying ``control_token`` only.
    """

    _started: ClassVar[bool] = False

    def __init__(
        self,
        app_dir: Path,
        *,
        enforce_keys: bool = False,
        settings_file: Path | None = None,
        allowed_hosts: Sequence[str] = (),
        quiet_settings: frozenset[str] = frozenset(),
        max_body: int = MAX_BODY_BYTES,
        header_timeout: float = HEADER_TIMEOUT_SECONDS,
        body_timeout: float = BODY_TIMEOUT_SECONDS,
        easy_auth: bool = False,
        controls: dict[str, Control] | None = None,
        control_token: str = "",
    ) -> None:
        self.app_dir = app_dir.resolve()
        self.controls = dict(controls or {})
        self.control_token = control_token
        self.enforce_keys = enforce_keys
        self.allowed_hosts = tuple(allowed_hosts)
        self.quiet_settings = quiet_settings
        self.max_body = max_body
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.easy_auth = easy_auth
        self.settings_file = (settings_file or self.app_dir / "local.settings.json").resolve()
        self.functions: dict[str, HostedFunction] = {}
        self.load_errors: dict[str, str] = {}
        self.settings: AppliedSettings | None = None
        self.base_url: str | None = None
        self._driver: RuntimeDriver | None = None
        self._runner: web.ServerRunner | None = None
        self.listeners: list[QueueListener] = []

    async def start(self, host: str = "127.0.0.1", port: int = 7071) -> str:
        """Load the functions and start serving; returns the base URL (real port if 0)."""
        if FunctionHost._started:
            raise RuntimeError("one FunctionHost per process: the runtime keeps global state")
        FunctionHost._started = True
        try:
            await self._load()
            base_url = await self._serve(host, port)
            for listener in self.listeners:
                listener.start()
            return base_url
        except BaseException:
            await self.stop()
            raise

    async def _load(self) -> None:
        self.settings = apply_local_settings(self.settings_file)
        for name in self.settings.skipped:
            if name in self.quiet_settings:
                continue
            logger.warning(
                "Skipping '%s' from local settings as it's already defined in the environment.",
                name,
            )
        # As on Azure: the worker learns the app folder from the host, and the app
        # folder is importable (`from shared import ...` in a function).
        os.environ.setdefault("AzureWebJobsScriptRoot", str(self.app_dir))
        # As Core Tools: a local run is Development unless told otherwise (Azure's
        # default is Production), so the app may say what helps only locally.
        if not os.environ.get(ENVIRONMENT_SETTING):
            os.environ[ENVIRONMENT_SETTING] = "Development"
        if str(self.app_dir) not in sys.path:
            sys.path.append(str(self.app_dir))
        index = index_app(self.app_dir)
        self._driver = RuntimeDriver(load_protos())
        await self._driver.start(str(self.app_dir))
        specs = {spec.name: spec for spec in index.functions}
        for name in sorted([*specs, *index.errors]):
            if name in specs:
                self._add(await self._hosted(specs[name], index.route_prefix))
            else:  # its route is unknown: serve the default one, so the failure shows
                route = _valid_route(join_template(index.route_prefix, name))
                self._add(
                    HostedFunction(name, route, None, "function", load_error=index.errors[name])
                )
        self._listen(index.root)
        for name in index.disabled:
            logger.warning("Function %s is disabled.", name)
        if self.enforce_keys and not os.environ.get(KEY_SETTING):
            logger.warning(
                "Keys are enforced but %s is not set: keyed functions answer 401", KEY_SETTING
            )

    async def _hosted(self, spec: FunctionSpec, route_prefix: str) -> HostedFunction:
        """Check the function's route, then have the runtime load it."""
        if self._driver is None:
            raise RuntimeError("the runtime is not started")
        trigger = spec.http
        function = HostedFunction(
            spec.name,
            None,
            trigger.methods if trigger else None,
            trigger.auth_level if trigger else "anonymous",
            spec=spec,
        )
        if trigger is not None:
            template = join_template(route_prefix, trigger.route)
            try:
                RouteTemplate(template)
            except RouteTemplateError as exc:
                function.load_error = f"route {template!r}: {exc}"
                return function
            function.route = f"/{template}"
        try:
            function.function_id = await self._driver.load(spec)
        except LoadError as exc:
            function.load_error = str(exc)
        return function

    def _listen(self, root: Path) -> None:
        """A listener for each loaded queue trigger; one whose queue or connection cannot be
        resolved is reported as not loaded, as the host reports an indexing error."""
        if self._driver is None:
            raise RuntimeError("the runtime is not started")
        queued = [f for f in self.functions.values()
                  if f.spec and f.spec.queue and f.function_id and f.load_error is None]
        options = read_queue_options(root) if queued else None
        for function in queued:
            assert function.spec and function.spec.queue and function.function_id and options
            trigger = function.spec.queue
            try:
                listener = QueueListener(
                    function.name, function.function_id, trigger,
                    resolve_queue_name(trigger.queue_name), connection_string(trigger.connection),
                    options, self._driver.protos, self._driver.invoke)
            except (QueueTriggerError, ValueError) as exc:
                function.function_id = None
                self._add_error(function, f"the queue trigger cannot listen: {exc}")
                continue
            self.listeners.append(listener)

    def _add(self, function: HostedFunction) -> None:
        """Record a function, reporting it if it did not load."""
        self.functions[function.name] = function
        if function.load_error is not None:
            self._add_error(function, function.load_error)

    def _add_error(self, function: HostedFunction, error: str) -> None:
        function.load_error = self.load_errors[function.name] = error
        logger.error("Function '%s' failed to load: %s", function.name, error)

    async def _serve(self, host: str, port: int) -> str:
        if self._driver is None:
            raise RuntimeError("functions are not loaded")
        routes = RouteTable(
            (f.name, RouteTemplate(f.route.lstrip("/")), f.methods)
            for f in self.functions.values()
            if f.route is not None
        )
        public_host = urlsplit(os.environ.get("PUBLIC_BASE_URL", "")).netloc.rpartition("@")[2]
        server = FunctionServer(
            self._driver,
            self.functions,
            routes,
            enforce_keys=self.enforce_keys,
            key=os.environ.get(KEY_SETTING),
            hosts=HostPolicy.for_binding(host, [*self.allowed_hosts, _name(public_host)]),
            max_body=self.max_body,
            body_timeout=self.body_timeout,
            emulate_easy_auth=self.easy_auth,
            controls=self.controls,
            control_token=self.control_token,
        )
        low_level = DevServer(
            server.handle,
            access_log_class=AccessLogger,
            keepalive_timeout=self.header_timeout,
            auto_decompress=False,
        )
        self._runner = web.ServerRunner(low_level)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound_port = self._runner.addresses[0][1]
        url_host = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{url_host}:{bound_port}"
        logger.info("Host started: %s", self.base_url)
        return self.base_url

    async def stop(self) -> None:
        """Stop the queue listeners (running invocations finish), close the server, then the
        runtime's thread pool. Safe to call twice."""
        listeners, self.listeners = self.listeners, []
        for listener in listeners:
            await listener.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._driver is not None:
            await self._driver.stop()
            self._driver = None


def _name(netloc: str) -> str:
    """The host name of ``host[:port]`` (``[::1]`` keeps its brackets)."""
    if netloc.startswith("["):
        return netloc.partition("]")[0] + "]"
    return netloc.partition(":")[0]


def _valid_route(template: str) -> str | None:
    """The URL path for a template, None if it is no valid route (e.g. braces in a name)."""
    try:
        RouteTemplate(template)
    except RouteTemplateError:
        return None
    return f"/{template}"


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devhost.host",
        description="Serve the app's HTTP functions on the Azure Functions Python v1 runtime.",
    )
    parser.add_argument("--app-dir", type=Path, default=Path(), help="function app folder")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=7071, help="port to bind; 0 picks a free one")
    parser.add_argument(
        "--enforce-keys",
        action="store_true",
        help=f"require {KEY_SETTING} for authLevel function/admin (Core Tools does not)",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests whose Host is NAME (a tunnel's or proxy's name; * for any); "
        "bound to loopback the host otherwise answers only localhost, 127.0.0.1, [::1] and "
        "the host of PUBLIC_BASE_URL",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=MAX_BODY_BYTES,
        help="largest request body the host reads (default %(default)s; Azure allows 100 MB)",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=HEADER_TIMEOUT_SECONDS,
        help="seconds a connection may take to send a request head (default %(default)s)",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=BODY_TIMEOUT_SECONDS,
        help="seconds a request body may take to arrive (default %(default)s)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="also log each invocation's start and outcome (debug level)",
    )
    parser.add_argument(
        "--settings",
        type=Path,
        default=None,
        help="app settings file (default: APP_DIR/local.settings.json); variables already "
        "set in the environment win",
    )
    return parser.parse_args(argv)


async def _run(args: argparse.Namespace) -> int:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    host = FunctionHost(
        args.app_dir,
        enforce_keys=args.enforce_keys,
        settings_file=args.settings,
        allowed_hosts=args.allow_host,
        max_body=args.max_body_bytes,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
    )
    try:
        base_url = await host.start(args.host, args.port)
    except (SettingsError, AppIndexError, OSError) as exc:
        logger.error("Cannot start the functions host: %s", exc)
        return 1
    shown = base_url.replace("0.0.0.0", "localhost").replace("[::]", "localhost")  # noqa: S104
    print("Functions:\n")
    for function in host.functions.values():
        print(f"\t{describe(function, shown)}")
    print(f"\n{READY_PREFIX} {base_url}", flush=True)
    try:
        await stopping.wait()
    finally:
        await host.stop()
        logger.info("Host stopped")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    args = _arguments(argv)
    configure_logging(verbose=args.verbose)
    # Resolve paths first: like Azure, functions run with the app folder as cwd.
    args.app_dir = args.app_dir.resolve()
    args.settings = args.settings.resolve() if args.settings else None
    os.chdir(args.app_dir)
    return asyncio.run(_run(args))


if __name__ == "__main__":
    sys.exit(main())
