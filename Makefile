# Section 9 course: every instructor step is a target. The environment is created on first use.
#
#   make demo       the whole instructor demo: generate -> demo submissions -> autograde -> feedback -> grades
#   make test       the test suite (what .ci/run runs)
#   make hub        the course on a JupyterHub at http://127.0.0.1:8000 (as root; README, "Teaching on JupyterHub")
#
# Single steps, in the order an instructor runs them: generate, submissions, autograde, feedback, export, scores.

PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# nbgrader shells out to `alembic`, and kernels are found through PATH: the venv's bin/ must come first.
RUN := PATH="$(BIN):$$PATH" VIRTUAL_ENV="$(CURDIR)/$(VENV)"
ASSIGNMENT := section09
STAMP := $(VENV)/.installed

.PHONY: demo test test-browser test-hub hub hub-users hub-env hub-tools venv sandbox-tools postgres-tools browser-tools generate submissions autograde feedback export reports scores lab formgrader bench bench-hub bench-notebooks clean-demo

demo: $(STAMP) sandbox-tools
	$(RUN) $(BIN)/python -m rnncourse demo

test: $(STAMP) sandbox-tools postgres-tools browser-tools hub-env
	$(RUN) $(BIN)/python -m pytest

# Only the browser tests (JupyterLab in Chromium); screenshots land in artifacts/browser/.
test-browser: $(STAMP) browser-tools
	$(RUN) $(BIN)/python -m pytest -m browser

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Debian packages the course needs beyond Python: install them where we can (root with apt-get); otherwise stop and
# say what the instructor has to install. $(call apt_install,<test command>,<package>,<what it is for>)
define apt_install
	@$(1) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing $(2) ($(3)) with apt-get"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(2) >/dev/null \
	    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(2) >/dev/null; }; \
	  else \
	    echo "Missing $(2), needed for $(3): run 'sudo apt-get install $(2)' (see README)." >&2; exit 1; \
	  fi; }
endef

# Autograde runs every kernel in a bubblewrap sandbox (rnncourse/kernels/).
sandbox-tools:
	$(call apt_install,command -v bwrap,bubblewrap,the autograde sandbox)

# The class-grading tests run a real PostgreSQL server (the gradebook many graders share).
postgres-tools:
	$(call apt_install,ls /usr/lib/postgresql/*/bin/initdb,postgresql,the class-grading tests)

# The browser tests drive Debian's Chromium with Playwright (no browser download).
browser-tools:
	$(call apt_install,test -x /usr/bin/chromium,chromium,the browser tests)

# Only the hub tests (accounts, permissions, the exchange loop, the hub in Chromium).
test-hub: $(STAMP) browser-tools hub-env
	$(RUN) $(BIN)/python -m pytest -m hub

# --- The course hub (README, "Teaching on JupyterHub"); as root: it makes accounts and serves them. ---
ROSTER ?= roster.csv

# The proxy (configurable-http-proxy, pinned by package-lock.json) with Node.js; patchelf for the shared interpreter.
hub-tools: node_modules/.installed
	$(call apt_install,command -v patchelf,patchelf,copying the course interpreter for the hub's accounts)

node_modules/.installed: package.json package-lock.json
	$(call apt_install,command -v npm,nodejs npm,the hub's proxy)
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The course environment every hub account runs (/opt/section09/env; SECTION09_HUB_PREFIX moves it).
hub-env: $(STAMP) hub-tools
	$(RUN) $(BIN)/python -m rnncourse.hub env

# Accounts for ROSTER's students and the instructor, the instructor's course directory, the roster in the gradebook.
hub-users: hub-env
	$(RUN) $(BIN)/python -m rnncourse.hub users --roster $(ROSTER)

# JupyterHub on http://127.0.0.1:8000 (SECTION09_HUB_PORT), in the foreground; Ctrl-C stops it. Run hub-users first.
hub: hub-env
	$(RUN) $(BIN)/python -m rnncourse.hub start

generate: $(STAMP)
	$(RUN) $(BIN)/python -m rnncourse generate

submissions: $(STAMP)
	$(RUN) $(BIN)/python -m rnncourse submissions

# WORKERS=n local worker processes (default: one per core); SCHEDULER=tcp://host:8786 grades on a Dask cluster.
autograde: $(STAMP) sandbox-tools
	$(RUN) $(BIN)/python -m rnncourse autograde $(if $(WORKERS),--workers $(WORKERS)) $(if $(SCHEDULER),--scheduler $(SCHEDULER))

feedback: $(STAMP)
	$(RUN) $(BIN)/python -m rnncourse feedback

export: $(STAMP)
	$(RUN) $(BIN)/python -m rnncourse export

reports: $(STAMP)
	$(RUN) $(BIN)/python -m rnncourse reports

scores: $(STAMP)
	$(RUN) $(BIN)/python -m rnncourse scores

# The student's view: JupyterLab on the released assignment (open a notebook, run it, press Validate).
lab: $(STAMP)
	cd release/$(ASSIGNMENT) && $(RUN) $(BIN)/jupyter lab

# The instructor's view: JupyterLab in the course directory; Nbgrader > Formgrader.
formgrader: $(STAMP)
	$(RUN) $(BIN)/jupyter lab

# Class grading: stock serial nbgrader autograde vs the parallel runner on 12 submissions; prints, asserts nothing.
bench: $(STAMP) sandbox-tools
	$(RUN) $(BIN)/python benchmarks/class_grading.py

# Grading on submission (issue 18), on a real course hub with its own accounts (as root): Submit -> feedback latency
# of K students submitting one at a time, the drain time of all K at once, and the runner's batch on the same class.
bench-hub: $(STAMP) sandbox-tools hub-env
	$(RUN) $(BIN)/python benchmarks/onsubmit_latency.py

# Notebook run times, autograde time per submission, sandbox overhead.
bench-notebooks: $(STAMP) sandbox-tools
	$(RUN) $(BIN)/python benchmarks/autograde_timing.py

clean-demo:
	rm -rf submitted autograded/*/ feedback reports logs gradebook.db grades.csv canvas.csv .grading
