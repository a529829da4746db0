"""local.settings.json: the app settings a local run gets, as Core Tools applies them.

On Azure the app settings are environment variables of the worker process;
Core Tools emulates that by copying ``Values`` into the environment before the
functions load. As with Core Tools, a variable already set in the real
environment wins over the file (so a shell or CI can override one setting
without editing the file); the skipped names are reported.
"""

import json
import os
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path


class SettingsError(Exception):
    """local.settings.json exists but cannot be used."""


@dataclass
class AppliedSettings:
    """What applying the file did, for the startup log."""

    path: Path
    found: bool
    applied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def read_values(path: Path) -> dict[str, str] | None:
    """The file's ``Values``; None if there is no file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise SettingsError(f"{path} must hold a JSON object")
    if document.get("IsEncrypted") is True:
        raise SettingsError(
            f"{path} is encrypted (IsEncrypted: true); this host cannot decrypt it. "
            "Decrypt it with `func settings decrypt` or write the values in plain text."
        )
    values = document.get("Values", {})
    if not isinstance(values, dict):
        raise SettingsError(f"{path}: Values must be a JSON object")
    settings: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        if not isinstance(value, str):
            raise SettingsError(f"{path}: Values.{name} must be a string, like every app setting")
        settings[name] = value
    return settings


def configured(name: str, file_values: dict[str, str]) -> str:
    """A setting as the run will get it: the environment's value, else the file's."""
    return os.environ.get(name) or file_values.get(name) or ""


def apply_local_settings(
    path: Path, environ: MutableMapping[str, str] | None = None
) -> AppliedSettings:
    """Copy the file's Values into the environment, leaving variables already set alone."""
    target = os.environ if environ is None else environ
    values = read_values(path)
    result = AppliedSettings(path=path, found=values is not None)
    for name, value in (values or {}).items():
        if name in target:
            result.skipped.append(name)
        else:
            target[name] = value
            result.applied.append(name)
    return result
