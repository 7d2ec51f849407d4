"""Training under tf.distribute: MirroredStrategy over two logical CPU devices, and MultiWorkerMirroredStrategy with
two worker processes on 127.0.0.1. Each runs in fresh processes (devices and collectives are set up once per
process)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

CHILD = os.path.join(os.path.dirname(__file__), "train_child.py")


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
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = result_of(done.stdout)
    assert report["replicas"] == 2
    assert report["losses"][-1] < report["losses"][0]
    assert report["synchronized"] == [True]
    assert "at least the number of replicas (2" in report["small_batch_error"]
    assert "must divide by the number of replicas (2" in report["uneven_batch_error"]
    assert "Received: batch_size=3" in report["uneven_batch_error"]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["replicas"] == 2 and metrics["strategy"] == "MirroredStrategy"


@pytest.mark.slow
def test_multi_worker_mirrored_with_two_workers(tmp_path):
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    workers = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        workers.append(
            subprocess.Popen(
                [sys.executable, CHILD, str(tmp_path / "run"), "--strategy", "multi_worker", "--epochs", "2"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
        )
    reports = []
    try:
        for worker in workers:
            stdout, stderr = worker.communicate(timeout=300)
            assert worker.returncode == 0, stderr[-3000:]
            reports.append(result_of(stdout))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    assert [r["replicas"] for r in reports] == [2, 2]
    assert reports[0]["losses"] == pytest.approx(reports[1]["losses"])  # one model, trained together
    assert reports[0]["losses"][-1] < reports[0]["losses"][0]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())  # written by the chief (worker 0) only
    assert metrics["strategy"] == "MultiWorkerMirroredStrategy" and metrics["replicas"] == 2
