#!/usr/bin/env bash
# `make gpu-check` (docs/gpu.md): install the carried wheels (.whl/, from scripts/prepare_device_wheels.py)
# into a private folder, put it and this checkout first on PYTHONPATH, and run `lowrankdp gpu-check`.
# Arguments are passed on (e.g. --copy-to DIR, --dry-run, --budget-s 540). Works without make and
# without an installed lowrankdp: on a bare machine that has python3 with a CUDA build of torch.
set -u
cd "$(dirname "$0")/.." || exit 2
PY="${GPU_PY:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
if ls .whl/*.whl >/dev/null 2>&1; then
  SITE="${LOWRANKDP_CARRIED_SITE:-/tmp/lowrankdp-site}"
  echo "[gpu-check] installing $(ls .whl/*.whl | wc -l) carried wheels into $SITE"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
    || { echo "[gpu-check] error: installing .whl/*.whl failed" >&2; exit 3; }
  export LOWRANKDP_CARRIED_SITE="$SITE"
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export CUBLAS_WORKSPACE_CONFIG="${CUBLAS_WORKSPACE_CONFIG:-:4096:8}"
exec "$PY" -m lowrankdp gpu-check "$@"
