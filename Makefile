# Two entry points a fresh machine needs: `make demo` (the main job) and `make test`.
# Both create .venv and install what they need; torch comes from the local CPU wheel
# (torch==2.13.0) so no multi-GB CUDA build is pulled.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed.stamp
TORCH ?= torch==2.13.0
PRESET ?= smoke
OUT ?= runs/$(PRESET)

.PHONY: install demo test test-slow bench clean gpu-check gpu-check-dry device-wheels

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[all,test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/lowrankdp replicate --preset $(PRESET) --out $(OUT)

test: $(STAMP)
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

# The GPU path (docs/gpu.md). `gpu-check` needs no .venv: on a bare GPU machine it uses python3 (with its
# CUDA torch) plus the wheels carried in .whl/ (`make device-wheels` prepares them where pip can reach PyPI).
# GPU_CHECK_ARGS e.g. "--copy-to /some/dir"; at most 9 minutes on one H200-class GPU.
GPU_CHECK_ARGS ?=
gpu-check:
	bash scripts/gpu_check.sh $(GPU_CHECK_ARGS)

gpu-check-dry: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m lowrankdp gpu-check --dry-run $(GPU_CHECK_ARGS)

device-wheels: $(STAMP)
	$(BIN)/python scripts/prepare_device_wheels.py

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
