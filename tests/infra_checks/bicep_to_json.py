"""Parse Bicep files with pycep-parser and print their syntax trees as JSON.

Run by the infrastructure tools' interpreter (.cache/infra-tools), which has
pycep; prints ``{"trees": {path: tree}, "errors": {path: reason}}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pycep import BicepParser


def main(paths: list[str]) -> None:
    parser = BicepParser()
    trees: dict[str, object] = {}
    errors: dict[str, str] = {}
    for path in paths:
        try:
            trees[path] = parser.parse(file_path=Path(path))
        except Exception as error:  # each file's reason is reported
            errors[path] = f"{type(error).__name__}: {error}"
    json.dump({"trees": trees, "errors": errors}, sys.stdout, default=str)


if __name__ == "__main__":
    main(sys.argv[1:])
