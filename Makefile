# The two commands a new user needs: `make run` and `make test`.

# Python 3.13: `python3.13` on PATH when it really runs (a pyenv shim for an
# unselected version refuses), else the 3.13 that pyenv installed.
PYTHON ?= $(shell if python3.13 -c '' >/dev/null 2>&1; then echo python3.13; \
	else ls -d "$$(pyenv root 2>/dev/null)"/versions/3.13*/bin/python3.13 2>/dev/null | tail -n 1; fi)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# `make run PORT=7072` when 7071 is taken.
PORT ?= 7071

.PHONY: run test test-tools node-tools lint load bench venv clean contract client browser infra-tools check-infra azurite

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@test -n "$(PYTHON)" || { echo "Python 3.13 not found: install it (e.g. pyenv install 3.13)" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Azurite (the Table Storage emulator, npm) keeps delivery status; without node,
# make run still serves, with delivery status off.
run: $(STAMP)
	sh devhost/azurite/install.sh --optional
	$(PY) -m devhost --port $(PORT)

test:
	@$(MAKE) --no-print-directory -j4 --output-sync=target test-tools
	$(PY) -m ruff check .
	$(PY) -m pytest

# What the tests need, installed side by side (each a no-op once installed): the
# virtual environments, and one after another what goes through apt and node
# (the contract step installs node when it is missing; apt takes one at a time).
test-tools: $(STAMP) client infra-tools node-tools

node-tools:
	sh tests/contract/install.sh
	sh tests/browser/install.sh
	sh devhost/azurite/install.sh

# checkov, pycep-parser, check-jsonschema and pathspec for the offline checks
# of infra/, .github/ and the deployment package, in a virtual environment of
# their own (their pins would fight the project's): a no-op once installed.
INFRA_TOOLS := .cache/infra-tools
INFRA_STAMP := $(INFRA_TOOLS)/.installed

# The tools, and the deployment package the package tests read.
infra-tools: $(INFRA_STAMP) package

$(INFRA_STAMP): tests/infra_checks/requirements.txt
	@test -n "$(PYTHON)" || { echo "Python 3.13 not found: install it (e.g. pyenv install 3.13)" >&2; exit 1; }
	test -x $(INFRA_TOOLS)/bin/python || $(PYTHON) -m venv $(INFRA_TOOLS)
	$(INFRA_TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check -r tests/infra_checks/requirements.txt
	touch $@

# The deployment package azd and the workflow deploy (infra/package_app.py):
# the app's files and its dependencies built for Flex Consumption (Linux x86-64,
# CPython 3.13), staged in .cache/package/app. Downloads from PyPI only when
# requirements.txt changes (about 10 s; the wheels stay in .cache/package),
# otherwise it only restages the app's files (well under a second).
.PHONY: package
package:
	@test -n "$(PYTHON)" || { echo "Python 3.13 not found: install it (e.g. pyenv install 3.13)" >&2; exit 1; }
	$(PYTHON) infra/package_app.py

# Only the deployment checks: types, Flex rules, checkov, settings, hooks, azd,
# workflows, the package and the deployment guide.
check-infra: $(STAMP) $(INFRA_STAMP) package
	$(PY) -m pytest tests/test_infra_*.py tests/test_azd.py tests/test_workflows.py \
		tests/test_deploy_*.py

# Azurite, pinned in devhost/azurite/: a no-op once installed; fails without node.
azurite:
	sh devhost/azurite/install.sh

# Twilio's published OpenAPI description and the Prism mock it generates, for
# the contract test: a no-op once installed. Installs node and npm with apt when
# they are missing and it runs as root; otherwise the test skips, saying why
# (and fails in CI).
contract:
	sh tests/contract/install.sh

# openapi-python-client in a virtual environment of its own (.cache/openapi-client),
# for the test that generates a client from openapi.yaml: a no-op once installed.
client: $(STAMP)
	sh tests/client/install.sh $(PY)

# Debian's Chromium for the console's browser tests: a no-op once installed; it
# needs root and apt (else the tests skip, saying why; in CI they fail).
browser:
	sh tests/browser/install.sh

# 1,000 mixed requests at concurrency 50 with 5% Twilio faults, on loopback, and SMS
# pumping; `make load PROFILE=scale-out N=4`: N hosts behind one address, 2,000 sends.
load: $(STAMP)
	$(PY) -m loadtest $(if $(PROFILE),--profile $(PROFILE)) $(if $(N),--instances $(N))

# Performance beside baselines measured in the same run; `make bench WRITE=1` also
# rewrites docs/performance.md with the figures.
bench: $(STAMP) azurite
	$(PY) -m bench $(if $(WRITE),--write)

lint: $(STAMP)
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis .cache
