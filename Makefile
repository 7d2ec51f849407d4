PYTHON ?= python3
PYTEST_ARGS ?=

.PHONY: install test test-fast table demo bench bench-smoke

install:
	$(PYTHON) -m pip install -q -e ".[test]"

# The README's test command: install, then the whole suite (slow tests included).
test: install
	$(PYTHON) -m pytest -q -n 2 --dist loadgroup $(PYTEST_ARGS)

# Without the slow tests, for quick iterations.
test-fast:
	$(PYTHON) -m pytest -q -n 2 --dist loadgroup -m "not slow" $(PYTEST_ARGS)

# Rewrite the README's table of models from the registry and the profiler.
table:
	$(PYTHON) -m keras_convnets.analysis.model_table --update README.md

# Speed, side by side (see benchmarks/RESULTS.md); a few minutes on 2 cores. torch is optional.
bench:
	$(PYTHON) -m benchmarks.train
	$(PYTHON) -m benchmarks.infer
	$(PYTHON) -m benchmarks.data

# Every benchmark once, tiny: checks that they run (seconds, not a measurement).
bench-smoke:
	$(PYTHON) -m benchmarks.train --smoke --models resnet20
	$(PYTHON) -m benchmarks.infer --smoke --model resnet20
	$(PYTHON) -m benchmarks.data --smoke --cases cifar
	$(PYTHON) -m benchmarks.conv_gradient --smoke
	$(PYTHON) -m benchmarks.bias_gradient --sizes 4,1024
	$(PYTHON) -m benchmarks.bias_gradient --timing --smoke
