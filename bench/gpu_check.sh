#!/usr/bin/env bash
# One GPU check in under 10 minutes on one GPU, printing one table (bench/gpu_check.py says what each part measures):
#   bench/gpu_check.sh                  # on a CUDA machine; --data <pusht replay .zarr> if ../shared is elsewhere
#   bench/gpu_check.sh --cpu-dry-run    # a few steps of each part on the CPU (a CI test)
# Python: $PYTHON, else the repository's .venv/bin/python, else python3. Exit code 1 if any part failed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# A hard stop at 10 minutes (GPU_CHECK_TIMEOUT_S overrides it, e.g. for the dry run on a loaded CI machine);
# gpu_check.py reads the same variable to size its training part so that the table prints before the stop.
exec timeout --signal=INT --kill-after=20 "${GPU_CHECK_TIMEOUT_S:-600}" "$PYTHON" bench/gpu_check.py "$@"
