"""A Python client generated from openapi.yaml, used the way a mobile team would use it.

``openapi-python-client`` (pinned in tests/client/, installed by ``make
test`` into .cache/openapi-client/) generates the client. Generation must
be clean: each warning is a part of the contract the client silently lost
(once, every problem schema and send_sms's JSON body). The generated client
then sends an SMS and places a call through ``python -m devhost --sandbox``
(what ``make run`` runs, with function keys enforced as on Azure) and reads
each refusal as its own typed problem.
"""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import pytest
import schemathesis
from harness import ACCOUNT_SID, AUTH_TOKEN, PROBLEM
from installs import CACHE, ROOT, require_install
from live import LiveApp

SPEC = ROOT / "openapi.yaml"
TOOL = CACHE / "openapi-client"
GENERATOR = TOOL / "bin" / "openapi-python-client"
PACKAGE = "twilio_functions_client"
FUNCTION_KEY = "fake-function-key-s3cr3t-0020"
TO = "+14155552671"


@pytest.fixture(scope="module")
def generation(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The generator's run over openapi.yaml: the folder holding the package, and its output."""
    require_install(TOOL, ROOT / "tests" / "client", ("install.sh", "requirements.txt"),
                    (GENERATOR,), "`make client` (part of `make test`)")
    folder = tmp_path_factory.mktemp("generated")
    result = subprocess.run(
        [GENERATOR, "generate", "--path", SPEC, "--meta", "none",
         "--output-path", folder / PACKAGE],
        # Its post-generation hooks run the ruff it pinned, from its own environment.
        env={**os.environ, "PATH": f"{GENERATOR.parent}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True, text=True, timeout=300, check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return folder, output


@pytest.fixture(scope="module")
def client(generation: tuple[Path, str]) -> Iterator[ModuleType]:
    """The generated package, imported from where it was generated."""
    folder, _ = generation
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(folder))
        for name in [name for name in sys.modules if name.partition(".")[0] == PACKAGE]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def live_app() -> Iterator[LiveApp]:
    """``make run``'s app with its Twilio sandbox, keys enforced, no optional setting."""
    app = LiveApp({"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                   "FUNCTIONS_LOCAL_KEY": FUNCTION_KEY,
                   **dict.fromkeys(("ALLOWED_COUNTRIES", "ALLOW_PREMIUM_NUMBERS"), "")},
                  args=("--sandbox", "--enforce-keys"))
    yield app
    assert app.stop() == 0


def keyed(client: ModuleType, live_app: LiveApp, **httpx_args: Any) -> Any:
    """The client as an app holds it: the function key in the header Azure reads."""
    return client.AuthenticatedClient(
        base_url=f"{live_app.base_url}/api", token=FUNCTION_KEY, prefix="",
        auth_header_name="x-functions-key", raise_on_unexpected_status=True,
        httpx_args=httpx_args)


def test_the_contract_generates_without_a_warning(generation: tuple[Path, str],
                                                  client: ModuleType) -> None:
    """Every schema survives: once the problem schemas were all dropped, with warnings."""
    _, output = generation
    assert "warning" not in output.lower(), output
    models = importlib.import_module(f"{PACKAGE}.models")
    schemas = set(yaml_schemas())
    problems = {name for name in schemas if name.endswith("Problem")}
    assert len(problems) > 10
    missing = {name for name in schemas if not hasattr(models, name)}
    assert not missing


def yaml_schemas() -> list[str]:
    """The names of openapi.yaml's component schemas that a client gets as models."""
    raw = schemathesis.openapi.from_path(SPEC).raw_schema["components"]["schemas"]
    return [name for name, schema in raw.items() if schema.get("type") == "object"
            or "allOf" in schema]


def test_send_sms_takes_json_with_to(client: ModuleType, live_app: LiveApp) -> None:
    """The JSON body is a type of its own, ``to`` required, and goes out as JSON."""
    send_sms = importlib.import_module(f"{PACKAGE}.api.mobile.send_sms")
    models = importlib.import_module(f"{PACKAGE}.models")
    body = inspect.signature(send_sms.sync_detailed).parameters["body"].annotation
    assert "SendSmsJson" in str(body)
    to = attrs.fields(models.SendSmsJson).to
    assert to.default is attrs.NOTHING

    sent: list[Any] = []
    with keyed(client, live_app, event_hooks={"request": [sent.append]}) as app:
        message = send_sms.sync(client=app, body=models.SendSmsJson(to=TO, body="Your table"))
    assert sent[0].headers["content-type"] == "application/json"
    assert isinstance(message, models.SmsMessage)
    stored = [m for m in live_app.state()["messages"] if m["sid"] == message.sid]
    assert [(m["to"], m["body"]) for m in stored] == [(TO, "Your table")]


def test_the_client_places_a_call(client: ModuleType, live_app: LiveApp) -> None:
    make_call = importlib.import_module(f"{PACKAGE}.api.mobile.make_call")
    models = importlib.import_module(f"{PACKAGE}.models")
    with keyed(client, live_app) as app:
        call = make_call.sync(client=app, body=models.MakeCallJson(to=TO, message="Hello"))
    assert isinstance(call, models.Call)
    assert call.status == models.CallStatus.QUEUED
    state = live_app.wait_for(lambda s: any(
        c["sid"] == call.sid and c["status"] in ("completed", "failed") for c in s["calls"]))
    placed = next(c for c in state["calls"] if c["sid"] == call.sid)
    assert (placed["to"], placed["twiml_status"]) == (TO, 200)
    assert "Hello" in str(placed["heard"])


@pytest.mark.parametrize(("operation", "body", "problem", "slug", "details"), [
    ("send_sms", {"to": "+19005551234", "body": "hi"}, "SmsRefusedProblem",
     "destination-refused", {"field": "to"}),
    ("send_sms", {"to": "+15005550004", "body": "hi"}, "SmsRefusedProblem",
     "recipient-opted-out", {"field": "to"}),
    ("make_call", {"to": "+1234567"}, "BadRequestProblem", "invalid-field", {"field": "to"}),
    ("send_sms", {"to": "+15005550001", "body": "hi"}, "BadRequestProblem", "twilio-refused",
     {"twilio_code": 21211}),
])
def test_refusals_arrive_as_typed_problems(client: ModuleType, live_app: LiveApp,
                                           operation: str, body: dict[str, str], problem: str,
                                           slug: str, details: dict[str, Any]) -> None:
    api = importlib.import_module(f"{PACKAGE}.api.mobile.{operation}")
    models = importlib.import_module(f"{PACKAGE}.models")
    request = models.SendSmsJson if operation == "send_sms" else models.MakeCallJson
    with keyed(client, live_app) as app:
        answer = api.sync(client=app, body=request(**body))
    assert type(answer) is getattr(models, problem)
    assert answer.type_ == PROBLEM + slug
    assert {name: getattr(answer, name) for name in details} == details


def test_a_missing_function_key_is_the_hosts_401(client: ModuleType, live_app: LiveApp) -> None:
    send_sms = importlib.import_module(f"{PACKAGE}.api.mobile.send_sms")
    models = importlib.import_module(f"{PACKAGE}.models")
    sent_before = len(live_app.state()["messages"])
    with client.Client(base_url=f"{live_app.base_url}/api") as anonymous:
        answer = send_sms.sync_detailed(client=anonymous, body=models.SendSmsJson(to=TO, body="hi"))
    assert (answer.status_code, answer.parsed) == (401, None)
    assert len(live_app.state()["messages"]) == sent_before
