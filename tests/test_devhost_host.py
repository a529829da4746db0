"""The local Functions host end to end: the CLI serving the fixture app over real HTTP.

The runtime keeps global state, so each host is its own process, as `make run`
starts it. The fixture app is copied to a temporary folder, where the tests add
what cannot live in the repository: a function with a syntax error (it would
break the linter) and a local.settings.json (it is git-ignored).
"""

import asyncio
import base64
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from devhost import children

PROJECT = Path(__file__).resolve().parent.parent
FIXTURE_APP = PROJECT / "tests" / "fixtures" / "hostapp"
READY = "functions host listening on "
KEY = "local-key"
# Guards against a hung host only; no assertion depends on timing.
HANG_GUARD_SECONDS = 60


def make_app(root: Path) -> Path:
    app = root / "hostapp"
    shutil.copytree(FIXTURE_APP, app, ignore=shutil.ignore_patterns("__pycache__"))
    broken = app / "broken_syntax"
    broken.mkdir()
    shutil.copy(app / "fails" / "function.json", broken / "function.json")
    (broken / "__init__.py").write_text("def main(req:\n", encoding="utf-8")
    settings = {"FUNCTIONS_LOCAL_KEY": KEY, "FROM_FILE": "from-file", "OVERRIDDEN": "from-file"}
    (app / "local.settings.json").write_text(json.dumps({"Values": settings}), encoding="utf-8")
    return app


class HostProcess:
    """`python -m devhost.host` in a child process, its stderr kept in a file."""

    def __init__(self, app: Path, *extra: str, log_dir: Path) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("FUNCTIONS_LOCAL_KEY", "FROM_FILE", "OVERRIDDEN")
        }
        env.update(OVERRIDDEN="from-env", PYTHONPATH=str(PROJECT))
        self.stderr_path = log_dir / f"host-{uuid.uuid4().hex}.log"
        self._stderr = self.stderr_path.open("wb")
        self.process = children.start(
            [sys.executable, "-m", "devhost.host", "--app-dir", str(app), "--port", "0", *extra],
            cwd=PROJECT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.stdout_lines: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        self.base_url = self._wait_until_ready()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _wait_until_ready(self) -> str:
        while True:
            try:
                line = self._lines.get(timeout=HANG_GUARD_SECONDS)
            except queue.Empty:
                self.process.kill()
                pytest.fail(f"host never became ready:\n{self.stderr()}")
            if line is None:
                self.process.wait()
                pytest.fail(f"host exited with {self.process.returncode}:\n{self.stderr()}")
            self.stdout_lines.append(line)
            if line.startswith(READY):
                return line.removeprefix(READY)

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, signum: int = signal.SIGINT) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=HANG_GUARD_SECONDS)
        finally:
            self._stderr.close()
            if self.process.poll() is None:
                self.process.kill()


@dataclass
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(method: str, url: str, **options: Any) -> Reply:
    async def send() -> Reply:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, url, allow_redirects=False, **options) as response,
        ):
            return Reply(response.status, response.headers, await response.read())

    return asyncio.run(send())


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_app(tmp_path_factory.mktemp("devhost"))


@pytest.fixture(scope="module")
def keyed(app: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    host = HostProcess(
        app,
        "--enforce-keys",
        "--allow-host",
        "example.test",
        log_dir=tmp_path_factory.mktemp("logs"),
    )
    yield host
    host.stop()


@pytest.fixture(scope="module")
def open_host(app: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    host = HostProcess(app, log_dir=tmp_path_factory.mktemp("logs"))
    yield host
    host.stop()


def test_homepage_lists_the_functions(keyed: HostProcess) -> None:
    reply = call("GET", keyed.base_url + "/")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    page = reply.body.decode()
    assert f"hello: [GET] {keyed.base_url}/api/hello" in page
    assert f"items: [GET] {keyed.base_url}/api/items/{{id:int}}/{{detail?}}" in page


def test_a_sync_function_answers_text(keyed: HostProcess) -> None:
    reply = call("GET", keyed.base_url + "/api/hello", params={"name": "Ada"})
    assert (reply.status, reply.body) == (200, b"Hello, Ada!")
    assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_unknown_paths_and_disabled_functions_are_404(keyed: HostProcess) -> None:
    assert call("GET", keyed.base_url + "/api/nope").status == 404
    assert call("GET", keyed.base_url + "/api/disabled_fn").status == 404


def test_a_known_route_with_another_method_is_405(keyed: HostProcess) -> None:
    reply = call("POST", keyed.base_url + "/api/hello")
    assert reply.status == 405
    assert reply.headers["Allow"] == "GET"


def test_the_request_reaches_an_async_function_as_sent(keyed: HostProcess) -> None:
    body = bytes(range(256))
    host_header = "example.test:8443"
    reply = call(
        "POST",
        keyed.base_url + "/api/echo/a/b?x=1&x=2&empty=&marker=m",
        data=body,
        headers=[
            ("Host", host_header),
            ("X-Multi", "a"),
            ("X-Multi", "b"),
            ("x-functions-key", KEY),
        ],
    )
    assert reply.status == 200
    seen = reply.json()
    assert seen["function_name"] == "echo"
    assert seen["method"] == "POST"
    assert seen["url"] == f"http://{host_header}/api/echo/a/b?x=1&x=2&empty=&marker=m"
    assert seen["headers"]["x-multi"] == "a,b"
    assert seen["headers"]["host"] == host_header
    assert seen["query"] == {"x": "1,2", "marker": "m"}
    assert seen["route_params"] == {"rest": "a/b"}
    assert seen["body_base64"] == base64.b64encode(body).decode()
    assert (seen["thread"], seen["loop_running"]) == ("MainThread", True)


def test_a_sync_function_runs_in_the_runtime_thread_pool_in_the_app_folder(
    keyed: HostProcess, app: Path
) -> None:
    seen = call("GET", keyed.base_url + "/api/probe").json()
    assert seen["thread"].startswith("ThreadPoolExecutor-")
    assert seen["loop_running"] is False
    assert Path(seen["cwd"]) == app.resolve()


def test_route_parameters_and_constraints(keyed: HostProcess) -> None:
    assert call("GET", keyed.base_url + "/api/items/42").json() == {"id": "42"}
    assert call("GET", keyed.base_url + "/api/items/42/full").json() == {
        "id": "42",
        "detail": "full",
    }
    assert call("GET", keyed.base_url + "/api/items/abc").status == 404
    assert call("GET", keyed.base_url + "/api/items/99999999999").status == 404


def test_status_headers_and_cookies_come_back(keyed: HostProcess) -> None:
    reply = call("POST", keyed.base_url + "/api/created")
    assert (reply.status, reply.body) == (201, b'{"created": true}')
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.headers["Location"] == "/api/items/7"
    assert reply.headers["X-Custom"] == "custom value"
    cookies = reply.headers.getall("Set-Cookie")
    assert len(cookies) == 2
    session = next(c for c in cookies if c.startswith("session=abc"))
    assert "HttpOnly" in session
    theme = next(c for c in cookies if c.startswith("theme=dark"))
    assert "Max-Age=60" in theme
    assert "SameSite=Lax" in theme


def test_a_named_http_output_binding_is_the_response(keyed: HostProcess) -> None:
    reply = call("GET", keyed.base_url + "/api/out-param")
    assert (reply.status, reply.body) == (202, b"via output binding")


def test_a_raising_function_answers_500_without_details(keyed: HostProcess) -> None:
    reply = call("GET", keyed.base_url + "/api/fails")
    assert (reply.status, reply.body) == (500, b"")


@pytest.mark.parametrize("name", ["mismatch", "broken_syntax"])
def test_functions_that_did_not_load_answer_500_naming_them(keyed: HostProcess, name: str) -> None:
    reply = call("GET", f"{keyed.base_url}/api/{name}")
    assert reply.status == 500
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    problem = reply.json()
    assert name in problem["detail"]
    assert b"Traceback" not in reply.body
    assert b"Error" not in reply.body


def test_keys_are_required_when_enforced(keyed: HostProcess) -> None:
    echo = keyed.base_url + "/api/echo"
    no_key = call("POST", echo)
    # What Azure answers: 401, no body, no Content-Type (not a problem document).
    assert (no_key.status, no_key.body) == (401, b"")
    assert "Content-Type" not in no_key.headers
    assert call("POST", echo, headers={"x-functions-key": "wrong"}).status == 401
    assert call("POST", echo, params={"code": "wrong"}).status == 401
    assert call("POST", echo, headers={"x-functions-key": KEY}).status == 200
    assert call("POST", echo, params={"code": KEY}).status == 200
    assert call("GET", keyed.base_url + "/api/hello").status == 200


def test_keys_are_not_required_by_default(open_host: HostProcess) -> None:
    assert call("POST", open_host.base_url + "/api/echo").status == 200


def test_local_settings_reach_the_function_and_the_environment_wins(keyed: HostProcess) -> None:
    seen = call("GET", keyed.base_url + "/api/probe", params={"names": "FROM_FILE,OVERRIDDEN"})
    assert seen.json()["settings"] == {"FROM_FILE": "from-file", "OVERRIDDEN": "from-env"}


def test_lifecycle_logs_and_clean_exit_on_sigint(app: Path, tmp_path: Path) -> None:
    host = HostProcess(app, log_dir=tmp_path)
    marker = uuid.uuid4().hex
    assert f"\thello: [GET] {host.base_url}/api/hello" in host.stdout_lines
    assert call("POST", host.base_url + "/api/echo", params={"marker": marker}).status == 200
    assert call("GET", host.base_url + "/api/hello", params={"name": marker}).status == 200
    assert call("GET", host.base_url + "/api/fails").status == 500
    assert host.stop(signal.SIGINT) == 0
    log = host.stderr()
    assert f"[echo] root: echo received 0 bytes, marker {marker}" in log
    assert f"[hello] root: hello for {marker}" in log
    assert "POST /api/echo 200" in log
    assert "Function 'mismatch' failed to load: FunctionLoadError" in log
    assert "declared in Python but not in function.json: {'request'}" in log
    assert "Function 'broken_syntax' failed to load: SyntaxError" in log
    assert "ValueError: fails-secret-detail" in log
    assert "Traceback" in log
    assert "Host stopped" in log


def test_sigterm_also_exits_cleanly(app: Path, tmp_path: Path) -> None:
    host = HostProcess(app, log_dir=tmp_path)
    assert host.stop(signal.SIGTERM) == 0
    assert "Host stopped" in host.stderr()


def test_an_encrypted_settings_file_stops_the_host(app: Path, tmp_path: Path) -> None:
    settings = tmp_path / "encrypted.json"
    settings.write_text(json.dumps({"IsEncrypted": True, "Values": {}}), encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "devhost.host",
            "--app-dir",
            str(app),
            "--port",
            "0",
            "--settings",
            str(settings),
        ],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_SECONDS,
        check=False,
    )
    assert result.returncode == 1
    assert "encrypted" in result.stderr
    assert READY not in result.stdout


API_SCRIPT = """
import asyncio, json, sys
from pathlib import Path
import aiohttp
from devhost.host import FunctionHost

async def main():
    host = FunctionHost(Path(sys.argv[1]), enforce_keys=True)
    base_url = await host.start(host="127.0.0.1", port=0)
    async with aiohttp.ClientSession() as session:
        async with session.get(base_url + "/api/hello") as response:
            status = response.status
    await host.stop()
    functions = {
        name: [f.route, sorted(f.methods or []), f.auth_level] for name, f in host.functions.items()
    }
    print(json.dumps({"base_url": base_url, "status": status, "functions": functions,
                      "load_errors": host.load_errors}))

asyncio.run(main())
"""


def test_the_python_api_reports_functions_and_load_errors(app: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", API_SCRIPT, str(app)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_SECONDS,
        check=False,
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["base_url"].startswith("http://127.0.0.1:")
    assert not report["base_url"].endswith(":0")
    assert report["status"] == 200
    assert report["functions"]["items"] == ["/api/items/{id:int}/{detail?}", ["GET"], "anonymous"]
    assert report["functions"]["echo"] == ["/api/echo/{*rest}", ["POST", "PUT"], "function"]
    assert set(report["load_errors"]) == {"mismatch", "broken_syntax"}
    assert "declared in Python but not in function.json" in report["load_errors"]["mismatch"]
    assert "disabled_fn" not in report["functions"]
