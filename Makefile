# Two commands do everything on a fresh machine (no GPU, no ROS distribution needed):
#   make demo   set up .venv, build the test checkpoint, run the node on a generated camera
#   make test   set up .venv and run the whole test suite
# ROS 2 distribution of the PyPI wheels: kilted (default, .venv) or jazzy (.venv-jazzy), e.g.
#   make test ROS_DISTRO=jazzy ENGINE=none TESTS="test/unit test/ros test/lint"
# ENGINE: cpu | gpu | none (default: gpu where an NVIDIA driver answers, else cpu).
ROS_DISTRO ?= kilted
ENGINE ?=
VENV ?= $(if $(filter kilted,$(ROS_DISTRO)),.venv,.venv-$(ROS_DISTRO))
DURATION ?= 30
TESTS ?= test
PYTEST_ARGS ?=

export ROS_DISTRO

.PHONY: setup demo test lint clean-venv

setup:
	@scripts/setup_venv.sh $(ENGINE)

demo: setup
	$(VENV)/bin/openvla-ros demo --duration $(DURATION)

test: setup
	$(VENV)/bin/python -m pytest $(TESTS) -ra $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/python -m pytest test -m linter

clean-venv:
	rm -rf $(VENV)
