PYTHON ?= python3
PYTEST_ARGS ?=

.PHONY: install test test-fast table demo bench

install:
	$(PYTHON) -m pip install -q -e ".[test]"

# The README's test command: install, then the whole suite (slow tests included).
test: install
	$(PYTHON) -m pytest -q -p no:cacheprovider -n 2 --dist loadgroup $(PYTEST_ARGS)

# Without the slow tests, for quick iterations.
test-fast:
	$(PYTHON) -m pytest -q -n 2 --dist loadgroup -m "not slow" $(PYTEST_ARGS)

# Rewrite the README's table of models from the registry and the profiler.
table:
	$(PYTHON) -m keras_convnets.model_table --update README.md
