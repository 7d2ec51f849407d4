"""Fault tolerance: a run killed by SIGKILL mid-training and started again with the same command ends with the
weights of an uninterrupted run (fixed seed, deterministic ops)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

CHILD = os.path.join(os.path.dirname(__file__), "train_child.py")
EPOCHS = 6


def command(output_dir) -> list[str]:
    return [sys.executable, CHILD, str(output_dir), "--epochs", str(EPOCHS)]


def losses(run) -> list[float]:
    with open(os.path.join(run, "history.csv")) as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


@pytest.mark.slow
def test_sigkill_then_rerun_ends_where_an_uninterrupted_run_ends(tmp_path):
    reference_dir, run_dir = tmp_path / "reference", tmp_path / "run"
    reference = subprocess.Popen(command(reference_dir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    victim = subprocess.Popen(command(run_dir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    checkpoints = run_dir / "checkpoints"

    def saved_epochs():
        return [int(p.name[6:]) for p in checkpoints.glob("epoch-*")] if checkpoints.exists() else []

    deadline = time.monotonic() + 240
    while max(saved_epochs(), default=0) < 2 and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    victim.kill()  # SIGKILL, after the second epoch's checkpoint
    victim.wait()
    assert 2 <= max(saved_epochs(), default=0) < EPOCHS, victim.stderr.read().decode()[-2000:]
    assert victim.returncode == -9
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "model.keras").exists()

    rerun = subprocess.run(command(run_dir), capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "Resuming from" in rerun.stdout
    assert reference.wait(timeout=240) == 0, reference.stderr.read().decode()[-2000:]

    resumed = keras.saving.load_model(run_dir / "model.keras")
    uninterrupted = keras.saving.load_model(reference_dir / "model.keras")
    assert resumed.optimizer.iterations.numpy() == uninterrupted.optimizer.iterations.numpy() == EPOCHS * 4
    for a, b in zip(resumed.weights, uninterrupted.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7, err_msg=a.path)
    for a, b in zip(resumed.optimizer.variables, uninterrupted.optimizer.variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7, err_msg=a.path)
    np.testing.assert_allclose(losses(run_dir), losses(reference_dir), rtol=1e-6)
    assert len(losses(run_dir)) == EPOCHS
