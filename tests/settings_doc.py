"""docs/settings.md, written from the one declaration of each setting (``shared.settings``).

``tests/test_settings.py`` holds the file to what this renders, so a setting added,
changed or removed in ``DECLARATIONS`` fails the tests until the page is rewritten:

    .venv/bin/python tests/settings_doc.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "settings.md"

HEAD = """\
# App settings

<!-- Written by tests/settings_doc.py from shared/settings.py: edit those, then run
     `.venv/bin/python tests/settings_doc.py`. tests/test_settings.py checks it. -->

The app reads these environment variables (Azure's app settings; locally, the
`Values` of `local.settings.json`, copied from
[`local.settings.json.example`](../local.settings.json.example), where variables
already set win). Each is declared once, with its meaning, default and parser, in
[`shared/settings.py`](../shared/settings.py); this table is written from that
declaration.

| name | need | meaning |
|---|---|---|
"""

TAIL = """
A missing or malformed setting gives a 500 `misconfigured` problem naming the
setting, never its value; the local host (`make run`) reports it as
`SETTINGS PROBLEM` when it starts. A Key Vault reference Azure could not resolve
is refused the same way rather than used as a credential.

Who sets each of them in Azure, and what a deployment provisions:
[deploy.md, "App settings"](deploy.md#app-settings). The rate limits' settings in
context: [security.md, "Rate limits"](security.md#rate-limits).
"""


def need(declaration) -> str:
    """The table's "need" cell: required, the default, or optional."""
    if declaration.required:
        return "required"
    if declaration.default:
        return f"default `{declaration.default}`"
    return "optional"


def row(declaration) -> str:
    return f"| `{declaration.name}` | {need(declaration)} | {declaration.meaning} |"


def render() -> str:
    """The whole of docs/settings.md."""
    from shared.settings import DECLARATIONS  # here: run as a script, the root is added first

    return HEAD + "".join(row(d) + "\n" for d in DECLARATIONS) + TAIL


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # run as a script, sys.path starts at tests/
    DOC.write_text(render(), encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT)}")
