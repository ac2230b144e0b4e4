# vpsnet: two commands on a fresh Debian 12 machine, as root:
#   make demo   set up, boot the default lab fleet, show it, tear it down
#   make test   set up, then the whole test suite
SHELL      := /bin/bash
VENV       := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.cache/collections
export ANSIBLE_ROLES_PATH := $(CURDIR)/roles
PYTEST_ARGS ?=
LINT_PY    := lab tools tests roles plugins bench packaging/scripts awx ee

.PHONY: setup demo test test-all test-fast lint unit packages repo check-packages driver driver-check clean collection ee sanity

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

# The suite CI runs: unit, lint, host packaging and build checks, containers,
# real guests. The layers marked heavy (DKMS builds in TCG guests) are left to
# test-all so CI stays well inside its 90 minutes on 2 cores.
# The unit layer (pure logic, in-process) and the integration layer (real
# ansible-playbook runs, servers, kernel builds on the host; no guests) run on
# both cores first; the guest layers then run one at a time, as they share one
# booted lab.
test: setup lint
	@bash scripts/dockerd.sh
	pytest -p no:cacheprovider -ra -n 2 --dist loadfile $(PYTEST_ARGS) tests/unit
	pytest -p no:cacheprovider -ra -n 2 --dist loadfile --durations=10 $(PYTEST_ARGS) tests/integration
	pytest -p no:cacheprovider -ra -m "not heavy" --durations=25 $(PYTEST_ARGS) \
		--ignore=tests/unit --ignore=tests/integration tests

# Everything, heavy layers included (apt/DKMS upgrade paths, molecule/kvm).
test-all: setup lint
	@bash scripts/dockerd.sh
	pytest -p no:cacheprovider -ra $(PYTEST_ARGS) tests

# Quick iteration: the unit layer only (no processes, no builds, no guests).
test-fast: setup lint unit

unit:
	pytest -p no:cacheprovider -q -n 2 --dist loadfile tests/unit

PLAYBOOKS = provision.yml deploy.yml rollback.yml playbooks molecule/rollout molecule/rollout-core

# mypy checks the collection's plugins under their import names (the checkout as vpsnet.fleet)
lint:
	ruff check $(LINT_PY) molecule/rollout
	mypy lab tools/vpsnet_tools molecule/rollout/builds.py packaging/scripts/kmods.py packaging/scripts/kernel-matrix.py awx
	MYPYPATH=$(CURDIR)/.cache/collections mypy -p ansible_collections.vpsnet.fleet.plugins
	@if [ -d roles ] && ls roles/*/tasks >/dev/null 2>&1; then \
		yamllint -s roles $(PLAYBOOKS) && ansible-lint --profile production --offline roles $(PLAYBOOKS); fi

# The vpsnet.fleet collection tarball, dist/vpsnet-fleet-<VERSION>.tar.gz (galaxy.yml)
collection:
	@bash scripts/build-collection.sh dist

# ansible-test sanity on the built collection (~1 min; its venvs come from PyPI the first time)
sanity:
	@bash scripts/sanity-collection.sh

# The execution environment image vpsnet-ee:<inputs hash> from that tarball
# (execution-environment.yml, ee/README.md); skipped when the image exists
ee: collection
	@bash scripts/ee-build.sh dist/vpsnet-fleet-$$(tr -d '[:space:]' < VERSION).tar.gz

driver:
	$(MAKE) -C driver-src

driver-check:
	$(MAKE) -C driver-src check

packages:
	$(MAKE) -C packaging packages

repo:
	$(MAKE) -C packaging repo

check-packages:
	$(MAKE) -C packaging check-packages

clean:
	$(MAKE) -C driver-src clean
	$(MAKE) -C packaging clean
