#!/bin/sh
# Installs the browser the console's tests (tests/test_console_browser.py) drive:
# Chromium from Debian's packages, through apt. Playwright's own browser download
# is not used (its download host is not reachable everywhere); Playwright for
# Python (requirements-dev.txt) launches this Chromium by its path.
#
# A no-op when Chromium is installed. Without root or apt there is nothing to
# do here: the tests then skip, saying why (and fail in CI, where CI=true).
set -eu

for candidate in /usr/lib/chromium/chromium /usr/bin/chromium; do
    if [ -x "$candidate" ]; then
        exit 0
    fi
done

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "browser: Chromium not found, and installing it needs root and apt-get:" \
         "the console's browser tests will be skipped (run 'apt-get install chromium' as root)" >&2
    exit 0
fi

echo "browser: installing Debian's chromium for the console's browser tests" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
