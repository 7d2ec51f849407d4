"""Training under tf.distribute: MirroredStrategy over two logical CPU devices, and MultiWorkerMirroredStrategy with
two worker processes on 127.0.0.1. Each runs in fresh processes (devices and collectives are set up once per
process).

The multi-worker tests compare what all-reduced losses cannot show: a checksum of every weight and optimizer
variable of each worker at the end (`distribute.weights_checksum`). Two workers that resume from different
checkpoints (a run directory that is not on storage they share) are stopped with one line before training; a job
whose worker is killed mid-epoch and restarted with the same command resumes from the last checkpoint on both
workers and ends with the weights of the uninterrupted job."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time

import pytest

CHILD = os.path.join(os.path.dirname(__file__), "train_child.py")
EPOCHS = 3  # the multi-worker jobs: 4 steps of a global batch of 16 (8 per worker) an epoch


def result_of(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, stdout[-2000:]
    return json.loads(lines[-1][len("RESULT ") :])


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(output_dirs: list, epochs: int = EPOCHS) -> list[subprocess.Popen]:
    """One `train_child.py` per worker of a two-worker cluster on free localhost ports; worker i trains in
    `output_dirs[i]` (the same directory for storage that both share)."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(len(output_dirs))]}
    workers = []
    for index, output_dir in enumerate(output_dirs):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        workers.append(
            subprocess.Popen(
                [sys.executable, CHILD, str(output_dir), "--strategy", "multi_worker", "--epochs", str(epochs)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
        )
    return workers


def finish(workers: list[subprocess.Popen], timeout: float = 420) -> list[tuple[int, str, str]]:
    """(returncode, stdout, stderr) of each worker; any still running at the end is killed."""
    outputs = []
    try:
        for worker in workers:
            stdout, stderr = worker.communicate(timeout=timeout)
            outputs.append((worker.returncode, stdout, stderr))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    return outputs


def tree_hashes(root) -> dict[str, str]:
    """sha256 of every file under `root`, by relative path."""
    out = {}
    for directory, _, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


def resumed_epoch(stdout: str) -> int | None:
    match = re.search(r"^Resuming from \S*epoch-(\d+) ", stdout, re.MULTILINE)
    return int(match.group(1)) if match else None


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    """An uninterrupted two-worker job of EPOCHS epochs in one shared run directory: the reports of both
    workers and the directory."""
    run = tmp_path_factory.mktemp("multi_worker") / "run"
    outputs = finish(start_workers([run, run]))
    for returncode, _, stderr in outputs:
        assert returncode == 0, stderr[-3000:]
    return [result_of(stdout) for _, stdout, _ in outputs], run


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            CHILD,
            str(tmp_path / "run"),
            "--strategy",
            "mirrored",
            "--cpu-devices",
            "2",
            "--epochs",
            "3",
            "--sync-bn",
            "--check-small-batch",
            "--before",
            "14",  # another model trained first in the process, under the same strategy name
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = result_of(done.stdout)
    assert report["replicas"] == 2
    assert report["before_loss"] > 0  # a second MirroredStrategy in the process aborted every collective
    assert report["losses"][-1] < report["losses"][0]
    assert report["synchronized"] == [True]
    assert "at least the number of replicas (2" in report["small_batch_error"]
    assert "must divide by the number of replicas (2" in report["uneven_batch_error"]
    assert "Received: batch_size=3" in report["uneven_batch_error"]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["replicas"] == 2 and metrics["strategy"] == "MirroredStrategy"


@pytest.mark.slow
def test_multi_worker_mirrored_with_two_workers_ends_with_the_same_weights_on_both(two_workers):
    reports, run = two_workers
    assert [r["replicas"] for r in reports] == [2, 2]
    assert reports[0]["losses"] == pytest.approx(reports[1]["losses"])  # all-reduced: equal even if weights differ
    assert reports[0]["losses"][-1] < reports[0]["losses"][0]
    # what the losses cannot show: every weight, batch-norm statistic and optimizer slot is the same on both
    assert re.fullmatch(r"[0-9a-f]{64}", reports[0]["checksum"])
    assert reports[0]["checksum"] == reports[1]["checksum"]
    metrics = json.loads((run / "metrics.json").read_text())  # written by the chief (worker 0) only
    assert metrics["strategy"] == "MultiWorkerMirroredStrategy" and metrics["replicas"] == 2
    assert metrics["iterations"] == EPOCHS * 4


@pytest.mark.slow
def test_workers_that_see_different_checkpoints_stop_with_one_line_before_training(tmp_path):
    """Without shared storage: the chief's run directory holds the checkpoint of epoch 2, worker 1's (another
    directory) none. Both workers stop, naming what each one sees; nothing of the chief's run is lost."""
    chief_dir, worker_dir = tmp_path / "chief" / "run", tmp_path / "worker1" / "run"
    alone = subprocess.run(  # the same run, trained for 2 epochs by one process, as an earlier start would
        [sys.executable, CHILD, str(chief_dir), "--epochs", "2"], capture_output=True, text=True, timeout=300
    )
    assert alone.returncode == 0, alone.stderr[-3000:]
    before = tree_hashes(chief_dir)
    assert {"checkpoints/epoch-0002/weights.weights.h5", "model.keras", "metrics.json"} <= set(before)
    outputs = finish(start_workers([chief_dir, worker_dir], epochs=2), timeout=300)
    line = (
        "WorkersDisagreeError: The workers would resume from different checkpoints: the chief (worker 0) sees "
        "epoch 2, worker 1 sees no checkpoint. A multi-worker run needs its run directory"
    )
    for index, (returncode, stdout, stderr) in enumerate(outputs):
        assert returncode == 1, stderr[-3000:]
        assert line in stderr, stderr[-3000:]
        assert f"(`output_dir` {str([chief_dir, worker_dir][index])!r} on this worker)" in stderr
        assert "epoch 1/2" not in stdout and "RESULT" not in stdout  # nothing trained
    after = tree_hashes(chief_dir)
    # run.json is written again by the chief at each start (it now records the multi-worker strategy); every other
    # file, checkpoints and final model included, is byte for byte what the single process left
    assert {k: v for k, v in after.items() if k != "run.json"} == {k: v for k, v in before.items() if k != "run.json"}
    assert not worker_dir.exists()  # a non-chief worker writes nothing
    assert not os.path.exists(chief_dir / ".lock")


@pytest.mark.slow
def test_a_killed_worker_and_a_restarted_job_resume_from_the_last_checkpoint_on_both(tmp_path, two_workers):
    """Worker 1 is SIGKILLed during epoch 2 (once the checkpoint of epoch 1 exists); the chief then fails (its
    collectives lose their peer) or is killed. The same command restarted on both workers resumes from epoch 1 on
    both, and ends with the same weights on both workers, equal bit for bit to the uninterrupted job's
    (`two_workers`): seed 7 and deterministic ops, the batches of epoch e a function of (seed, e), and an
    all-reduce of two values, which does not depend on an order."""
    reference, _ = two_workers
    run = tmp_path / "run"
    workers = start_workers([run, run])
    first = run / "checkpoints" / "epoch-0001"
    deadline = time.monotonic() + 420
    while not first.exists() and all(w.poll() is None for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.exists(), finish(workers, timeout=5)[0][2][-3000:]
    workers[1].kill()  # SIGKILL, during epoch 2
    workers[1].wait()
    try:
        workers[0].wait(timeout=120)  # MultiWorkerMirroredStrategy's health check stops the chief
    except subprocess.TimeoutExpired:
        workers[0].kill()
        workers[0].wait()
    assert workers[1].returncode == -9 and workers[0].returncode != 0
    assert not (run / "checkpoints" / "epoch-0003").exists() and not (run / "metrics.json").exists()

    outputs = finish(start_workers([run, run]))
    for returncode, _stdout, stderr in outputs:
        assert returncode == 0, stderr[-3000:]
    killed_at = [resumed_epoch(stdout) for _, stdout, _ in outputs]
    assert killed_at[0] == killed_at[1] and killed_at[0] in (1, 2), killed_at
    reports = [result_of(stdout) for _, stdout, _ in outputs]
    assert reports[0]["checksum"] == reports[1]["checksum"] == reference[0]["checksum"]
    assert reports[0]["losses"] == pytest.approx(reference[0]["losses"], rel=1e-6)
    assert json.loads((run / "metrics.json").read_text())["iterations"] == EPOCHS * 4


AVERAGING_CHILD = """
import json, os
from keras_convnets.trainer import callbacks, distribute
distribute.configure_cpu_devices(2)
strategy = distribute.get_strategy("mirrored")
import keras, numpy as np, tensorflow as tf
class Counter(keras.layers.Layer):  # a float non-trainable weight that is not a statistic: left alone
    def build(self, shape):
        self.count = self.add_weight(shape=(), initializer="zeros", trainable=False, name="count")

    def call(self, x):
        return x


with strategy.scope():
    inputs = keras.Input((3,))
    nested = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization(name="inner_bn")], name="block")
    model = keras.Model(inputs, keras.layers.Dense(2)(Counter()(nested(inputs))))
bn = nested.layers[0]
counter = model.layers[2]

def diverge(scale):  # replica r holds mean m * (1 + r) * scale and variance v + 3 r
    def step():
        r = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.float32)
        bn.moving_mean.assign(tf.constant([1.0, -2.0, 0.5]) * (1.0 + r) * scale)
        bn.moving_variance.assign(tf.constant([1.0, 4.0, 9.0]) + 3.0 * r)
    tf.function(lambda: strategy.run(step))()

def local():
    return [[np.asarray(t).tolist() for t in strategy.experimental_local_results(v.value)]  # the per-replica copies
            for v in (bn.moving_mean, bn.moving_variance)]

report = {"variables": [v.path for v in callbacks._statistics(model)]}

def count_per_replica():
    def step():
        r = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.float32)
        counter.count.assign(10.0 + r)
    tf.function(lambda: strategy.run(step))()

count_per_replica()
callback = callbacks.AverageReplicaStatistics(strategy)
callback.set_model(model)
diverge(1.0)
report["diverged"] = local()
callback.on_epoch_begin(0)
callback.on_test_begin()  # the epoch's validation: averaged before it
report["validated"] = local()
diverge(2.0)
callback.on_epoch_end(0)  # already averaged this epoch: left alone
report["after_validated_epoch"] = local()
callback.on_epoch_begin(1)
callback.on_epoch_end(1)  # no validation this epoch: averaged at its end
report["epoch_end"] = local()
report["counter"] = [float(t) for t in strategy.experimental_local_results(counter.count.value)]
print("RESULT " + json.dumps(report), flush=True)
"""


@pytest.mark.slow
def test_replica_batch_norm_statistics_are_averaged_before_validation_and_only_once_an_epoch():
    """Driven through the callback's hooks: Keras's `fit` calls `on_test_begin` of its callbacks when it runs the
    epoch's validation, after the training steps and before `on_epoch_end`."""
    done = subprocess.run([sys.executable, "-c", AVERAGING_CHILD], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = result_of(done.stdout)
    assert report["variables"] == ["block/inner_bn/moving_mean", "block/inner_bn/moving_variance"]  # nested
    assert report["diverged"] == [[[1.0, -2.0, 0.5], [2.0, -4.0, 1.0]], [[1.0, 4.0, 9.0], [4.0, 7.0, 12.0]]]
    averaged = [[[1.5, -3.0, 0.75]] * 2, [[2.5, 5.5, 10.5]] * 2]  # the numpy mean over the two replicas
    assert report["validated"] == averaged
    diverged_twice = [[[2.0, -4.0, 1.0], [4.0, -8.0, 2.0]], [[1.0, 4.0, 9.0], [4.0, 7.0, 12.0]]]
    assert report["after_validated_epoch"] == diverged_twice
    assert report["epoch_end"] == [[[3.0, -6.0, 1.5]] * 2, [[2.5, 5.5, 10.5]] * 2]
    assert report["counter"] == [10.0, 11.0]  # not a batch-norm statistic: each replica keeps its own
