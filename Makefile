# Two commands do everything on a fresh machine (no GPU, no ROS distribution needed):
#   make demo   set up .venv, build the test checkpoint, run the node on a generated camera
#   make test   set up .venv and run the whole test suite
VENV ?= .venv
DURATION ?= 30
PYTEST_ARGS ?=

.PHONY: setup demo test lint clean-venv

setup:
	@scripts/setup_venv.sh

demo: setup
	$(VENV)/bin/openvla-ros demo --duration $(DURATION)

test: setup
	$(VENV)/bin/python -m pytest test -ra $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/python -m pytest test -m linter

clean-venv:
	rm -rf $(VENV)
