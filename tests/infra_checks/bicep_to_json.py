"""Parse Bicep files with pycep-parser and print their syntax trees as JSON.

Run by the infrastructure tools' interpreter (.cache/infra-tools), which has
pycep; prints ``{"trees": {path: tree}, "errors": {path: reason}}``. pycep
writes an identifier (``name``) and a string literal (``'name'``) alike;
with ``--typed`` every identifier becomes ``{"identifier": "name"}`` so a
reader can tell them apart (``infra_support.evaluate`` needs it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pycep import BicepParser
from pycep.transformer import BicepElement


def _typed(node: Any) -> Any:
    if isinstance(node, BicepElement):
        return {"identifier": str(node)}
    if isinstance(node, dict):
        return {key: _typed(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_typed(item) for item in node]
    return node


def main(args: list[str]) -> None:
    typed = "--typed" in args
    parser = BicepParser()
    trees: dict[str, object] = {}
    errors: dict[str, str] = {}
    for path in (a for a in args if a != "--typed"):
        try:
            tree = parser.parse(file_path=Path(path))
            trees[path] = _typed(tree) if typed else tree
        except Exception as error:  # each file's reason is reported
            errors[path] = f"{type(error).__name__}: {error}"
    json.dump({"trees": trees, "errors": errors}, sys.stdout, default=str)


if __name__ == "__main__":
    main(sys.argv[1:])
