#!/bin/sh
# Installs openapi-python-client, which tests/test_generated_client.py runs to
# generate a Python client from openapi.yaml, into a virtual environment of
# its own, .cache/openapi-client/ (gitignored): the generator pins its own
# ruff, typer and pydantic, which must not move the project's pins.
#
# Usage: install.sh PYTHON (the Python 3.13 the Makefile found). Idempotent: a
# stamp holding the hash of the pins makes a re-run a no-op, and a change of
# pins reinstalls. Network is needed only here, through pip.
set -eu

python=${1:?usage: install.sh PYTHON}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dest="$root/.cache/openapi-client"
stamp="$dest/.installed"

# The same hash is recomputed by the test to detect an install older than the pins.
pins=$(cat "$here/install.sh" "$here/requirements.txt" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$pins" ]; then
    exit 0
fi

echo "client: installing openapi-python-client into $dest" >&2
rm -rf "$dest"
"$python" -m venv "$dest"
"$dest/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
echo "$pins" > "$stamp"
