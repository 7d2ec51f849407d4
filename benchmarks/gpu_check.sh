#!/usr/bin/env bash
# Training throughput on the GPUs of this machine, under eight minutes (see benchmarks/gpu_check.py): ResNet-50
# (224px, batch 256, mixed precision) with XLA off and on and with 8 steps per execution, GoogLeNet with its aux
# heads under MirroredStrategy over all visible GPUs with XLA off and on (keras-team/keras#21366's configuration),
# ResNet-20 (32px, batch 512) with XLA off and on. Prints the machine's table (device, driver, CUDA, cuDNN,
# versions) and the results table, in markdown, on stdout; progress on stderr.
#
#   bash benchmarks/gpu_check.sh                   # on the GPU machine, from anywhere
#   bash benchmarks/gpu_check.sh --smoke           # anywhere: tiny ResNet-20 cases, one round (checks that it runs);
#                                                  # without a GPU the mirrored case runs on 2 logical CPU devices
#   bash benchmarks/gpu_check.sh --budget 300      # seconds for the Python part (default 420)
#
# GPU_CHECK_SMOKE=1 and GPU_CHECK_BUDGET_S=N do the same as --smoke and --budget N. The Python part paces itself
# to its budget; `timeout` stops it 40 s after, so that the whole script stays under eight minutes. Exits 1 when
# nothing could be measured, 2 for a bad argument, 124 on the timeout.
set -uo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export PYTHONPATH="${PWD}${PYTHONPATH:+:$PYTHONPATH}"
SMOKE="${GPU_CHECK_SMOKE:-0}"
BUDGET="${GPU_CHECK_BUDGET_S:-420}"
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) SMOKE=1 ;;
        --budget)
            if [ $# -lt 2 ]; then echo "gpu_check: --budget needs a number of seconds" >&2; exit 2; fi
            BUDGET="$2"
            shift
            ;;
        -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_check: unknown argument '$1' (use --smoke, --budget SECONDS or --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$BUDGET" in
    '' | *[!0-9]*) echo "gpu_check: --budget must be a whole number of seconds, got '$BUDGET'" >&2; exit 2 ;;
esac
if [ "$BUDGET" -lt 1 ] || [ "$BUDGET" -gt 420 ]; then
    echo "gpu_check: --budget must be between 1 and 420 seconds (the script stays under eight minutes), got $BUDGET" >&2
    exit 2
fi
LIMIT=$((BUDGET + 40))
ARGS=(--budget "$BUDGET")
if [ "$SMOKE" = "1" ]; then ARGS+=(--smoke); fi

timeout "$LIMIT" python -m benchmarks.gpu_check "${ARGS[@]}"
status=$?
if [ "$status" -eq 124 ]; then echo "gpu_check: stopped after ${LIMIT} s (timeout)"; fi
exit "$status"
