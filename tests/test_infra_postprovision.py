"""infra/hooks/postprovision.sh as azd runs it: the Twilio secrets into Key Vault, the URLs.

The Azure CLI is a stand-in on PATH (``az`` below) that answers as Key Vault
does: 403 while the role the deployment just granted is not in effect yet,
``SecretNotFound`` for a secret never set. Interactive runs get a real
terminal (a pty), since the hook asks for secrets only there.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from infra_support import INFRA, bicep_trees, run_tool

from devhost import children

HOOK = INFRA / "hooks" / "postprovision.sh"
AZD_ENV = {
    "AZURE_KEY_VAULT_NAME": "kv-abc123",
    "AZURE_FUNCTION_APP_NAME": "func-abc123",
    "AZURE_RESOURCE_GROUP": "rg-prod",
    "PUBLIC_ORIGIN": "https://func-abc123.azurewebsites.net",
    "TWILIO_AUTH_TOKEN_KV_NAME": "twilio-auth-token",
    "TWILIO_API_KEY_KV_NAME": "twilio-api-key-secret",
}
# Key Vault's answers (az CLI 2.x wording) to a caller without the role, and for no secret.
FORBIDDEN = ("(Forbidden) Caller is not authorized to perform action on resource.\n"
             "Code: Forbidden\nInner error: {\"code\": \"ForbiddenByRbac\"}")
NOT_FOUND = ("(SecretNotFound) A secret with (name/id) {name} was not found in this key vault.\n"
             "Code: SecretNotFound")

FAKE_AZ = f"""#!{sys.executable}
import json, os, sys
path = os.environ["FAKE_AZ_STATE"]
state = json.load(open(path))
args = sys.argv[1:]
state["calls"].append(args)
def finish(code, out="", err=""):
    json.dump(state, open(path, "w"))
    sys.stdout.write(out)
    sys.stderr.write(err)
    sys.exit(code)
if args[:2] == ["keyvault", "secret"]:
    op, name = args[2], args[args.index("--name") + 1]
    refusals = state["refuse"].get(op, 0)
    if refusals:
        state["refuse"][op] = refusals - 1
        finish(1, err={FORBIDDEN!r})
    if op == "show":
        if name in state["secrets"]:
            finish(0, out="https://kv/secrets/" + name + "/1\\n")
        finish(1, err={NOT_FOUND!r}.format(name=name))
    if op == "set":
        state["secrets"][name] = sys.stdin.read()
        finish(0)
if args[:2] == ["functionapp", "restart"]:
    finish(0)
finish(2, err="unexpected az call: " + " ".join(args))
"""


def _bin(tmp_path: Path, with_az: bool) -> Path:
    """A PATH of the few programs the hook uses, and the stand-in az when asked."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("sh", "dirname", "pwd", "stty", "sleep"):
        found = shutil.which(name)
        if found and not (bin_dir / name).exists():
            (bin_dir / name).symlink_to(found)
    if with_az:
        az = bin_dir / "az"
        az.write_text(FAKE_AZ)
        az.chmod(0o755)
    return bin_dir


def _run_hook(tmp_path, **env: str) -> subprocess.CompletedProcess[str]:
    """The hook as azd runs it after provisioning, without a terminal or the Azure CLI."""
    return subprocess.run(["sh", str(HOOK)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL,
                          env={"PATH": str(_bin(tmp_path, False)), **env},
                          timeout=60, check=False)


class Terminal:
    """The hook run from a terminal with the stand-in az: answers each secret prompt."""

    def __init__(self, tmp_path: Path, *, secrets: dict[str, str] | None = None,
                 refuse: dict[str, int] | None = None) -> None:
        self.state_path = tmp_path / "az-state.json"
        self.state_path.write_text(json.dumps(
            {"secrets": secrets or {}, "refuse": refuse or {}, "calls": []}))
        self.path = str(_bin(tmp_path, True))

    def run(self, answers: list[str], **env: str) -> tuple[int, str, str]:
        primary, secondary = pty.openpty()
        process = children.start(
            ["sh", str(HOOK)], stdin=secondary, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={"PATH": self.path, "FAKE_AZ_STATE": str(self.state_path),
                 "KEY_VAULT_RETRY_DELAYS": "0 0 0", **AZD_ENV, **env})
        os.close(secondary)
        out = b""
        pending = list(answers)
        while True:  # each prompt is answered when it appears; EOF ends the run
            ready, _, _ = select.select([process.stdout], [], [], 60)
            assert ready, f"the hook stopped producing output: {out.decode()}"
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                break
            out += chunk
            while pending and out.count(b"(input hidden") > len(answers) - len(pending):
                os.write(primary, pending.pop(0).encode() + b"\n")
        err = process.stderr.read().decode()
        code = process.wait(timeout=60)
        os.close(primary)
        return code, out.decode(), err

    @property
    def state(self) -> dict:
        return json.loads(self.state_path.read_text())


def test_hook_passes_shellcheck():
    result = run_tool("shellcheck", "--shell=sh", str(HOOK), check=False)
    assert result.returncode == 0, result.stdout
    assert os.access(HOOK, os.X_OK)


def test_hook_reads_only_outputs_the_bicep_gives():
    outputs = set(bicep_trees()["infra/main.bicep"]["outputs"])
    used = set(re.findall(r"\$\{([A-Z_]+)", HOOK.read_text())) - {
        "TWILIO_API_KEY_SID", "KEY_VAULT_RETRY_DELAYS"}
    assert used <= outputs
    assert set(AZD_ENV) <= outputs


def test_hook_prints_the_secret_commands_and_the_twilio_urls(tmp_path):
    result = _run_hook(tmp_path, **AZD_ENV)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "az keyvault secret set --vault-name kv-abc123 --name twilio-auth-token" in out
    assert "twilio-api-key-secret" not in out  # no API key configured
    assert ("'A message comes in': Webhook, HTTP POST, "
            "https://func-abc123.azurewebsites.net/api/twiml") in out
    assert "SmsUrl=https://func-abc123.azurewebsites.net/api/twiml" in out
    assert "VoiceUrl=https://func-abc123.azurewebsites.net/api/voice" in out
    assert "StatusCallback=https://func-abc123.azurewebsites.net/api/status_callback" in out
    assert "az functionapp restart --resource-group rg-prod --name func-abc123" in out
    assert ("az functionapp keys list --resource-group rg-prod --name func-abc123 "
            "--query functionKeys.default") in out


def test_hook_asks_for_the_api_key_secret_when_a_key_is_configured(tmp_path):
    result = _run_hook(tmp_path, **AZD_ENV, TWILIO_API_KEY_SID="SK" + "b2" * 16)
    assert result.returncode == 0, result.stderr
    assert "--name twilio-api-key-secret" in result.stdout


def test_hook_refuses_to_run_outside_azd(tmp_path):
    result = _run_hook(tmp_path)
    assert result.returncode != 0
    assert "run by azd after provisioning" in result.stderr


def test_hook_waits_out_the_role_delay_then_sets_the_secret_once(tmp_path):
    """Key Vault answers 403 until the role applies: the hook retries, then writes."""
    terminal = Terminal(tmp_path, refuse={"show": 2, "set": 1})
    code, out, err = terminal.run(["auth-token-value"])
    assert code == 0, err
    assert terminal.state["secrets"] == {"twilio-auth-token": "auth-token-value"}
    assert err.count("Key Vault refused") == 3
    assert "the role this deployment granted is not in effect yet" in err
    assert "auth-token-value" not in out + err
    assert "Key Vault: twilio-auth-token set." in out
    assert ["functionapp", "restart", "--resource-group", "rg-prod", "--name", "func-abc123",
            "--output", "none"] in terminal.state["calls"]


def test_hook_run_again_leaves_a_set_secret_and_the_app_alone(tmp_path):
    terminal = Terminal(tmp_path, secrets={"twilio-auth-token": "kept"})
    code, out, err = terminal.run([])
    assert code == 0, err
    assert "twilio-auth-token is set" in out
    assert "Paste the" not in out
    assert terminal.state["secrets"] == {"twilio-auth-token": "kept"}
    assert not [call for call in terminal.state["calls"] if call[:2] == ["functionapp", "restart"]]


def test_hook_gives_up_after_its_pauses_and_says_what_to_check(tmp_path):
    terminal = Terminal(tmp_path, refuse={"show": 100})
    code, _, err = terminal.run([])
    assert code != 0
    assert err.count("Key Vault refused") == 3  # KEY_VAULT_RETRY_DELAYS: three pauses
    assert "Key Vault still refuses" in err
    assert "Key Vault Secrets Officer on kv-abc123" in err
    assert "azd hooks run postprovision" in err
    shows = [c for c in terminal.state["calls"] if c[:3] == ["keyvault", "secret", "show"]]
    assert len(shows) == 4


@pytest.mark.parametrize("op", ["show", "set"])
def test_hook_stops_at_once_on_a_failure_other_than_403(tmp_path, op):
    terminal = Terminal(tmp_path)
    state = terminal.state
    # A vault that does not exist: no retry can help.
    state["refuse"] = {}
    terminal.state_path.write_text(json.dumps(state))
    (Path(terminal.path) / "az").write_text(FAKE_AZ.replace(
        'if args[:2] == ["keyvault", "secret"]:',
        f'if args[:3] == ["keyvault", "secret", {op!r}]:\n'
        '    finish(1, err="(VaultNotFound) The vault kv-abc123 was not found.")\n'
        'if args[:2] == ["keyvault", "secret"]:'))
    code, _, err = terminal.run(["value"])
    assert code != 0
    assert "VaultNotFound" in err and "Key Vault refused" not in err
