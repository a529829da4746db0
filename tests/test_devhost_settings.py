"""local.settings.json handling of the local Functions host."""

import json
from pathlib import Path

import pytest

from devhost.settings_file import SettingsError, apply_local_settings


def write(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_values_go_into_the_environment_and_set_variables_win(tmp_path: Path) -> None:
    path = write(tmp_path / "local.settings.json", {"Values": {"A": "file", "B": "file"}})
    environ = {"B": "env"}
    result = apply_local_settings(path, environ)
    assert environ == {"A": "file", "B": "env"}
    assert (result.found, result.applied, result.skipped) == (True, ["A"], ["B"])


def test_a_missing_file_changes_nothing(tmp_path: Path) -> None:
    environ = {"B": "env"}
    result = apply_local_settings(tmp_path / "local.settings.json", environ)
    assert environ == {"B": "env"}
    assert not result.found


def test_an_encrypted_file_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = write(tmp_path / "local.settings.json", {"IsEncrypted": True, "Values": {"A": "x"}})
    environ: dict[str, str] = {}
    with pytest.raises(SettingsError, match="encrypted"):
        apply_local_settings(path, environ)
    assert environ == {}


@pytest.mark.parametrize(
    "text",
    ["{not json", "[]", '{"Values": []}', '{"Values": {"PORT": 7071}}'],
)
def test_unusable_files_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError):
        apply_local_settings(path, {})


def test_null_values_are_skipped_and_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text('\ufeff{"Values": {"A": null, "B": "b"}}', encoding="utf-8")
    environ: dict[str, str] = {}
    apply_local_settings(path, environ)
    assert environ == {"B": "b"}
