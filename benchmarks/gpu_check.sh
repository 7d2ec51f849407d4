#!/usr/bin/env bash
# Training throughput on a GPU, under ten minutes: ResNet-50 (224px, batch 256, mixed precision) with XLA off
# and on, and ResNet-20 (32px, batch 512) with XLA off and on. Our models, our training step
# (benchmarks.train.ours: the recipe's optimizer, loss and metrics as keras_convnets.train compiles them), one
# fixed batch kept on the GPU, warm-up (and XLA compilation) excluded, medians of interleaved rounds.
#
#   bash benchmarks/gpu_check.sh              # on the GPU machine, from the repository root
#   GPU_CHECK_SMOKE=1 bash benchmarks/gpu_check.sh   # anywhere: tiny sizes, one round (checks the script runs)
#
# Prints one markdown table (and the device) on stdout; progress on stderr. Exits non-zero only when nothing
# could be measured. Each Python run is capped by `timeout` so that the whole script stays under ten minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export PYTHONPATH="${PWD}${PYTHONPATH:+:$PYTHONPATH}"
SMOKE="${GPU_CHECK_SMOKE:-0}"
LIMIT="${GPU_CHECK_LIMIT_S:-540}"
if [ "$SMOKE" = "1" ]; then LIMIT=300; fi

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "(no nvidia-smi)"

timeout "$LIMIT" python - "$SMOKE" <<'PY'
import sys
import time

from benchmarks import common, train

smoke = sys.argv[1] == "1"
import tensorflow as tf  # noqa: E402

from keras_convnets.trainer import resolve_mixed_precision  # noqa: E402

gpus = tf.config.list_physical_devices("GPU")
for gpu in gpus:
    tf.config.experimental.set_memory_growth(gpu, True)
if gpus:
    details = tf.config.experimental.get_device_details(gpus[0])
    print(f"GPU: {details.get('device_name', gpus[0].name)}, compute capability {details.get('compute_capability')}")
else:
    print("No GPU visible to TensorFlow: running on the CPU" + (" (smoke mode)" if smoke else ""))
precision = resolve_mixed_precision("auto")  # the trainer's own choice: mixed float16 on GPUs that benefit

if smoke:
    cases = [("resnet20", 32, 4, 10)]
    steps, rounds = 1, 1
else:
    cases = [("resnet50", 224, 256, 1000), ("resnet20", 32, 512, 10)]
    steps, rounds = 10, 3

configs, rows = [], []
for name, size, batch, classes in cases:
    workload = train.Workload(name, size, batch, classes)
    for jit in (False, True):
        label = f"{name} b{batch} XLA {'on' if jit else 'off'}"
        try:
            started = time.perf_counter()
            _, run = train.ours(workload, precision, jit_compile=jit)
            run(2)  # tracing, XLA compilation, autotuning
            print(f"{label}: ready in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        except Exception as error:  # report and go on: one failing configuration must not hide the others
            print(f"{label}: FAILED {type(error).__name__}: {str(error)[:300]}", file=sys.stderr, flush=True)
            rows.append([name, size, batch, precision, "on" if jit else "off", "failed", "-"])
            continue
        configs.append(common.Config(label, run, batch, steps=steps, warmup=1))
        rows.append([name, size, batch, precision, "on" if jit else "off", label, None])

if not configs:
    print("Nothing could be measured.")
    sys.exit(1)
timings = common.measure(configs, rounds=rounds, log=lambda line: print(line, file=sys.stderr, flush=True))
table = []
for name, size, batch, precision_, jit, label, _ in rows:
    if label == "failed":
        table.append([name, f"{size}px", batch, precision_, jit, "failed", "-"])
        continue
    rate = timings[label].median
    partner = label.replace("XLA on", "XLA off") if jit == "on" else None
    ratio = rate / timings[partner].median if partner in timings else None
    table.append([name, f"{size}px", batch, precision_, jit, common.fmt(rate), common.fmt(ratio, 2)])
print(f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; tensorflow {tf.__version__}; "
      f"medians of {rounds} interleaved rounds of {steps} steps after warm-up\n")
print(common.markdown_table(["model", "input", "batch", "precision", "XLA", "train img/s", "XLA on / off"], table))
PY
status=$?
if [ "$status" -eq 124 ]; then echo "gpu_check: stopped after ${LIMIT} s (timeout)"; fi
exit "$status"
