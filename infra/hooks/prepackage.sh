#!/bin/sh
# azd prepackage hook (azure.yaml, service `api`): stages the deployment package
# azd then deploys as it is (dist: .cache/package/app, remoteBuild: false): the
# app's files and its dependencies built for Flex Consumption (Linux x86-64,
# CPython 3.13) by infra/package_app.py. Any Python 3.9 or later builds it:
# pip fetches wheels for the target, not for this machine.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
for python in python3.13 python3; do
    # A pyenv shim for a version that is not selected exists but refuses to run.
    if command -v "$python" >/dev/null 2>&1 \
        && "$python" -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
        exec "$python" "$root/infra/package_app.py"
    fi
done
echo "prepackage: Python 3.9 or later is needed to build the deployment package" \
    "(python3.13 or python3 on PATH)." >&2
exit 1
