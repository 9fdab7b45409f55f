# Two commands: `make demo` and `make test`. Both install the system packages they need
# (scripts/system-deps.sh) and create .venv on first use, with the newest supported Python
# on the machine (scripts/python.sh; override with PYTHON=...).
PYTHON ?= $(shell scripts/python.sh)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# iotvideo[restream] (PyGObject, built against system packages that only the suite and the
# benchmarks need: the demo does without them).
RESTREAM := $(VENV)/.restream
# Home Assistant's tests run in a virtualenv of their own (its pins are not ours).
HA_VENV := .venv-ha
HA_STAMP := $(HA_VENV)/.installed

.PHONY: demo test lint typecheck unit ha bench clean system-demo system-test

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "no supported Python found (see above)" >&2; exit 1; }
	scripts/venv.sh "$(PYTHON)" $(VENV) test,demo,bench
	touch $(STAMP)

$(RESTREAM): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[restream]"
	touch $(RESTREAM)

$(HA_STAMP): pyproject.toml tests_ha/requirements.txt
	scripts/venv-ha.sh "$(PYTHON)" $(HA_VENV)
	touch $(HA_STAMP)

system-demo:
	@scripts/system-deps.sh demo

system-test:
	@scripts/system-deps.sh test

demo: system-demo $(STAMP)
	$(BIN)/python examples/demo.py

# ruff targets Python 3.11 (pyproject.toml); where a 3.11 interpreter is at hand, it also
# compiles the sources, so nothing newer than 3.11's syntax slips in.
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples custom_components tests_ha
	$(BIN)/ruff format --check src tests benchmarks examples custom_components tests_ha
	@if python3.11 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then \
		python3.11 -m compileall -q src tests benchmarks examples >/dev/null && echo "compiled with Python 3.11"; \
	fi

# mypy checks against Python 3.11, the oldest supported ([tool.mypy] python_version),
# whatever Python runs it; the suite runs on the venv's (the newest available).
typecheck: $(STAMP)
	$(BIN)/mypy

unit: system-test $(STAMP) $(RESTREAM)
	$(BIN)/pytest

# custom_components/iotvideo in real Home Assistant core, against the platform run from .venv.
ha: system-test $(STAMP) $(HA_STAMP)
	IOTVIDEO_PYTHON=$(abspath $(BIN))/python $(HA_VENV)/bin/pytest -c tests_ha/pytest.ini tests_ha

# System packages first: on a fresh machine even the venv may need them.
test: system-test lint typecheck unit ha

bench: system-test $(STAMP) $(RESTREAM) $(HA_STAMP)
	$(BIN)/python benchmarks/vendor_api.py
	$(BIN)/python benchmarks/link.py
	$(BIN)/python benchmarks/live.py
	$(BIN)/python benchmarks/playback.py
	$(BIN)/python benchmarks/browser.py
	$(BIN)/python benchmarks/scale.py
	$(BIN)/python benchmarks/failover.py
	IOTVIDEO_PYTHON=$(abspath $(BIN))/python $(HA_VENV)/bin/python benchmarks/home_assistant.py

clean:
	rm -rf $(VENV) $(HA_VENV) .demo .pytest_cache .mypy_cache .ruff_cache
