# Every target sets up the virtualenv from a fresh clone first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
MODULES ?= examples
# embedded (the default) or real: a Kubernetes control plane built from source (make control-plane)
CLUSTER ?= embedded
# processes (the default: each pod's command runs in this environment) or containers: each pod
# runs in its image with podman (make images first: podtask dev's tasks use the runner image)
RUNTIME ?= processes
# The API's port of `make dev` (podtask dev --port; 0: any free port)
PORT ?= 8030
PYTEST_ARGS ?=
# pytest-xdist workers of `make test` (0: none, the tests run in pytest's own process). More
# than the cores: most of the suite's time is waiting (for pods, stacks, cron ticks), and the
# waits of several workers overlap. Tests that share a stack or a cluster share a worker
# (tests/worker_groups.py); the longest go first, by the durations of the last run
# (tests/worker_order.py, kept in ~/.cache/podtask/test-durations.json).
TEST_WORKERS ?= 4

.PHONY: dev test soak lint typecheck unit crds bench clean control-plane images wheelhouse browser

# pip shows its progress: the first install takes about a minute.
$(STAMP): pyproject.toml
	@echo "Setting up $(VENV): podtask and its development tools (about a minute the first time)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[test]'
	touch $(STAMP)

dev: $(STAMP)
	$(BIN)/podtask dev --port $(PORT) --cluster $(CLUSTER) --runtime $(RUNTIME) $(MODULES)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The benchmarks too, apart: they import each other and their task modules as top-level modules.
typecheck: $(STAMP)
	$(BIN)/mypy
	MYPYPATH=bench:bench/tasks $(BIN)/mypy bench/*.py bench/tasks/*.py

# Both clusters: the embedded one and the real control plane (built first, once; minutes on a
# fresh machine). PODTASK_TEST_CLUSTERS=embedded (or real) narrows the cluster-level suites.
# The 25 slowest tests close the output, so that a slow one stays in view.
test: lint typecheck control-plane browser
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup --durations=25 $(PYTEST_ARGS)

# Debian's chromium, which the dashboard's browser tests (tests/dashboard) drive with Playwright:
# installed with apt-get when it is missing and apt-get can be used (as root, or through sudo
# without a password). Without it those tests are deselected, and pytest's summary says why.
browser:
	@if command -v chromium >/dev/null; then exit 0; fi; \
	if ! command -v apt-get >/dev/null; then \
		echo "chromium is missing and there is no apt-get: the browser tests will not run"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else \
		echo "chromium is missing: apt-get install chromium (as root) to run the browser tests"; exit 0; fi; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$sudo apt-get install -y -qq chromium || { $$sudo apt-get update -qq && $$sudo apt-get install -y -qq chromium; } \
		|| echo "chromium could not be installed: the browser tests will not run"

# The `unit` tier (tests/tiers.py): pure code, no cluster, no server, no process started (a unit
# test that starts one fails). Well under a minute, for the loop.
unit: $(STAMP)
	$(BIN)/pytest -q -m unit $(PYTEST_ARGS)

# The fault-injection suite, long: acceptance 1 of issue 9 three times, more runner kills.
# A failure names its seed; PODTASK_FAULT_SEED=<seed> replays it.
soak: $(STAMP)
	PODTASK_SOAK=1 $(BIN)/pytest tests/reliability -v $(PYTEST_ARGS)

# The real control plane's binaries (etcd, kube-apiserver, kube-scheduler,
# kube-controller-manager), built once from devcluster/control-plane into
# ~/.cache/podtask/kube/<version>/ ($$PODTASK_KUBE_CACHE/<version>/ when set). Needs Go.
control-plane: $(STAMP)
	$(BIN)/python -m podtask_devcluster.control_plane build

# The control-plane, runner and examples images, built with buildah from the repository root as
# a user's CI would (docs/ci.md): on a local Debian base (debootstrap, cached in
# ~/.cache/podtask/images, or $$PODTASK_IMAGE_CACHE) given as PYTHON_IMAGE, from a fresh
# wheelhouse. Needs podman, buildah, runc and debootstrap.
images: $(STAMP)
	$(BIN)/python -m podtask_devcluster.image_build all

# ./wheelhouse: the project's wheel and its dependencies' at the versions this venv resolved,
# which the Dockerfiles install from (`docker build` needs it too).
wheelhouse: $(STAMP)
	$(BIN)/python -m podtask_devcluster.image_build wheelhouse

# The chart installs the same CRDs: Helm takes them from its crds/ folder.
crds: $(STAMP)
	$(BIN)/python -m podtask._contract.crds crds
	rm -f charts/podtask/crds/*.yaml
	cp crds/*.yaml charts/podtask/crds/

bench: $(STAMP)
	rm -f bench/results.json
	$(BIN)/python bench/e2e_throughput.py
	$(BIN)/python bench/admission_cost.py
	$(BIN)/python bench/api_throughput.py
	$(BIN)/python bench/dev_reload.py
	$(BIN)/python bench/runs_page.py
	$(BIN)/python bench/operator_scale.py
	$(BIN)/python bench/runner_startup.py

clean:
	rm -rf $(VENV) .podtask .mypy_cache .ruff_cache .pytest_cache wheelhouse
