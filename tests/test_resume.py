"""Fault tolerance: a run killed by SIGKILL mid-training and started again with the same command ends with the
weights of an uninterrupted run (fixed seed, deterministic ops): for every augmentation (epoch e's batches are a
function of the seed and e on every path, in memory or streaming) and for the plateau recipe (its checkpoint holds
the learning rate after the plateau decision, and the decision's state)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

CHILD = os.path.join(os.path.dirname(__file__), "train_child.py")
EPOCHS = 6


def command(output_dir, epochs: int = EPOCHS, extra: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, CHILD, str(output_dir), "--epochs", str(epochs), *extra]


def column(run, name: str) -> list[float]:
    with open(os.path.join(run, "history.csv")) as f:
        return [float(row[name]) for row in csv.DictReader(f)]


def losses(run) -> list[float]:
    return column(run, "loss")


def kill_and_resume(
    tmp_path, *, epochs: int, kill_after: int, steps_per_epoch: int, extra: tuple[str, ...] = ()
) -> tuple:
    """Start a reference run and a victim; SIGKILL the victim once its checkpoint of epoch `kill_after` is written,
    rerun it, and check both end with the same weights, optimizer state and history. Returns (run directory,
    reference directory, the last epoch saved before the kill)."""
    reference_dir, run_dir = tmp_path / "reference", tmp_path / "run"
    reference = subprocess.Popen(
        command(reference_dir, epochs, extra), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    victim = subprocess.Popen(command(run_dir, epochs, extra), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    checkpoints = run_dir / "checkpoints"

    def saved_epochs():
        return [int(p.name[6:]) for p in checkpoints.glob("epoch-*")] if checkpoints.exists() else []

    deadline = time.monotonic() + 240
    while max(saved_epochs(), default=0) < kill_after and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    victim.kill()  # SIGKILL, after the checkpoint of epoch `kill_after`
    victim.wait()
    killed_at = max(saved_epochs(), default=0)
    assert kill_after <= killed_at < epochs, victim.stderr.read().decode()[-2000:]
    assert victim.returncode == -9
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "model.keras").exists()

    rerun = subprocess.run(command(run_dir, epochs, extra), capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "Resuming from" in rerun.stdout
    assert reference.wait(timeout=240) == 0, reference.stderr.read().decode()[-2000:]

    resumed = keras.saving.load_model(run_dir / "model.keras")
    uninterrupted = keras.saving.load_model(reference_dir / "model.keras")
    iterations = json.loads((reference_dir / "metrics.json").read_text())["iterations"]
    assert resumed.optimizer.iterations.numpy() == uninterrupted.optimizer.iterations.numpy() == iterations
    assert iterations == epochs * steps_per_epoch  # every epoch ran, each of full batches, exactly once
    for a, b in zip(resumed.weights, uninterrupted.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7, err_msg=a.path)
    for a, b in zip(resumed.optimizer.variables, uninterrupted.optimizer.variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7, err_msg=a.path)
    np.testing.assert_allclose(losses(run_dir), losses(reference_dir), rtol=1e-6)
    np.testing.assert_allclose(column(run_dir, "learning_rate"), column(reference_dir, "learning_rate"), rtol=1e-6)
    assert len(losses(run_dir)) == epochs
    return run_dir, reference_dir, killed_at


@pytest.mark.slow
def test_sigkill_then_rerun_ends_where_an_uninterrupted_run_ends(tmp_path):
    kill_and_resume(tmp_path, epochs=EPOCHS, kill_after=2, steps_per_epoch=4)  # 64 images, batches of 16


@pytest.mark.slow
@pytest.mark.parametrize(
    "augmentation, stream",
    [("none", False), ("crop_flip", True), ("scale", False), ("inception", False)],
    ids=["none", "crop_flip-streaming", "scale", "inception"],
)
def test_sigkill_then_rerun_for_every_augmentation(tmp_path, augmentation, stream):
    extra = ("--augmentation", augmentation) + (("--stream",) if stream else ())
    kill_and_resume(tmp_path, epochs=3, kill_after=1, steps_per_epoch=4, extra=extra)


@pytest.mark.slow
def test_sigkill_then_rerun_keeps_the_plateau_decisions(tmp_path):
    # the ImageNet recipe divides the rate when the validation accuracy stops improving; patience 1 makes it act
    # in a few epochs of tiny data; the in-memory path ("none") keeps the batches out of the question
    _, reference_dir, killed_at = kill_and_resume(
        tmp_path,
        epochs=4,
        kill_after=2,
        steps_per_epoch=3,  # 10% of the 64 images held out for the plateau decisions: 3 full batches of 16
        extra=("--recipe", "imagenet", "--patience", "1", "--augmentation", "none"),
    )
    rates = column(reference_dir, "learning_rate")  # the rate each epoch trained with
    # the test means something: the uninterrupted run divides the rate at the end of the epoch the victim was
    # killed after, or later (today's code loses such a cut on resume)
    assert any(rates[j] < rates[j - 1] for j in range(killed_at, len(rates))), rates
    state = json.loads((reference_dir / "checkpoints" / "epoch-0004" / "state.json").read_text())
    assert set(state["callbacks"]["plateau"]) == {"best", "wait", "cooldown_counter"}
