#!/bin/sh
# Installs Azurite (Microsoft's Azure Storage emulator, npm `azurite`), pinned by
# package.json and package-lock.json beside this script, into .cache/azurite/
# (gitignored). `make run` and `make test` serve Table Storage with it.
#
# 3.35.0 is the newest Azurite that runs on Node 20. Idempotent: a stamp holding
# the hash of the pins makes a re-run a no-op, and a change of pins reinstalls.
# Network is needed only here, through npm's own client.
#
# Without node and npm this fails loudly (the tests cannot run without the
# store), unless given --optional (make run): then it says that delivery
# status is off and exits 0.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dest="$root/.cache/azurite"
stamp="$dest/.installed"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if [ "${1:-}" = "--optional" ]; then
        echo "azurite: node and npm not found: Azurite cannot be installed, so delivery" \
             "status is off unless a storage connection (STATE_STORAGE) is configured" >&2
        exit 0
    fi
    echo "azurite: node and npm are required (Node 20 or newer) to install Azurite, the" \
         "Table Storage emulator the tests run against; install them and run make test again" >&2
    exit 1
fi

pins=$(cat "$here/install.sh" "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$pins" ] && [ -x "$dest/node_modules/.bin/azurite-table" ]; then
    exit 0
fi

echo "azurite: installing Azurite (pinned in devhost/azurite/package-lock.json) into $dest" >&2
rm -rf "$dest"
mkdir -p "$dest"
cp "$here/package.json" "$here/package-lock.json" "$dest/"
# Azurite runs as plain JavaScript: no install script is needed, so none runs.
(cd "$dest" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
test -x "$dest/node_modules/.bin/azurite-table"
echo "$pins" > "$stamp"
