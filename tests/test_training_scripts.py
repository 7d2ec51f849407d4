"""The scripts of `training/` run, in their smoke mode, as a user runs them: `python training/X.py --smoke`."""

import ast
import math
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ["cifar_resnet", "imagenet_resnet50", "googlenet_aux", "multi_worker", "tune_bottlenecks"]


def run_script(name, tmp_path, *args, timeout=600):
    """Run `training/<name>.py --smoke --output-dir tmp_path/out ...` from the repository root; its stdout."""
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    command = [sys.executable, os.path.join("training", f"{name}.py"), "--smoke", "--output-dir", str(out), *args]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        f"{name} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout, out


def search(pattern, text):
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"no line matches {pattern!r} in:\n{text[-3000:]}"
    return match


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_say_what_they_do_and_how_to_run_them(name):
    path = os.path.join(ROOT, "training", f"{name}.py")
    with open(path) as f:
        source = f.read()
    docstring = ast.get_docstring(ast.parse(source))
    assert (
        docstring and f"python training/{name}.py " in docstring and f"python training/{name}.py --smoke" in docstring
    )
    assert 40 <= len(source.splitlines()) <= 120
    assert "--output-dir" in source
    with open(os.path.join(ROOT, "training", "README.md")) as f:
        assert f"- `{name}.py`: " in f.read()


def test_cifar_resnet(tmp_path):
    stdout, out = run_script("cifar_resnet", tmp_path)
    match = search(r"^resnet8 on digits: 4 epochs \(88 steps\), test loss ([\d.]+), test accuracy ([\d.]+)$", stdout)
    assert float(match[2]) >= 0.4  # chance is 0.1; 4 epochs of the recipe reach about 0.66
    assert (out / "model.keras").stat().st_size > 0
    assert not (out / "backup").exists() or not os.listdir(out / "backup")  # BackupAndRestore cleans up at the end


@pytest.mark.slow
def test_cifar_resnet_resumes_after_a_kill(tmp_path):
    """SIGKILL during epoch 3, run again: it goes on after the last finished epoch, with the optimizer's step
    count (and so the learning-rate schedule) restored: 4 epochs of 22 steps end at step 88."""
    out = tmp_path / "out"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    command = [sys.executable, os.path.join("training", "cifar_resnet.py"), "--smoke", "--output-dir", str(out)]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in process.stdout:
            if line.startswith("Epoch 3/4"):  # epochs 1 and 2 are backed up
                process.kill()
                break
    finally:
        process.kill()
        process.wait(timeout=60)
    assert process.returncode == -9
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    finished = int(search(r"^resuming after epoch (\d) of 4$", result.stdout)[1])
    assert finished in (2, 3)
    assert "Epoch 1/4" not in result.stdout and "Epoch 4/4" in result.stdout
    search(r"^resnet8 on digits: 4 epochs \(88 steps\), test loss [\d.]+, test accuracy [\d.]+$", result.stdout)


def test_imagenet_resnet50_mirrors_over_two_replicas(tmp_path):
    stdout, out = run_script("imagenet_resnet50", tmp_path)
    search(r"^replicas: 2, global batch 64, 3 steps an epoch$", stdout)
    match = search(r"^resnet50: training loss ([\d.]+) -> ([\d.]+), test accuracy ([\d.]+)$", stdout)
    assert all(math.isfinite(float(v)) for v in match.groups()) and 0 <= float(match[3]) <= 1
    assert (out / "model.keras").stat().st_size > 0


def test_googlenet_aux(tmp_path):
    stdout, out = run_script("googlenet_aux", tmp_path)
    terms = ast.literal_eval(search(r"^loss terms of the last epoch: (\{.*\})$", stdout)[1])
    # The total is main + 0.3 x (aux1 + aux2); the terms are printed rounded to 4 decimals.
    expected = terms["predictions_loss"] + 0.3 * (terms["aux1_loss"] + terms["aux2_loss"])
    assert abs(terms["loss"] - expected) < 1e-3
    with_aux, without = (
        int(v.replace(",", "")) for v in search(r"^parameters: ([\d,]+) with .*, ([\d,]+) without", stdout).groups()
    )
    assert without < with_aux
    assert float(search(r"^stripped model agrees with the main head: max difference (\S+)$", stdout)[1]) < 1e-5
    search(r"^googlenet on digits: 2 epochs, test loss [\d.]+, test accuracy [\d.]+$", stdout)
    assert (out / "googlenet.keras").stat().st_size > 0


@pytest.mark.slow
def test_multi_worker_two_local_workers(tmp_path):
    stdout, out = run_script("multi_worker", tmp_path, "--local-workers", "2", "--timeout", "500")
    search(r"^2 of 2 workers finished \(exit codes \[0, 0\]\)$", stdout)
    accuracies = {int(m[1]): m[2] for m in re.finditer(r"^worker (\d) of 2: test accuracy ([\d.]+)$", stdout, re.M)}
    assert sorted(accuracies) == [0, 1]
    assert accuracies[0] == accuracies[1]  # the metrics are summed over both workers' shares of the test split
    assert (out / "model.keras").stat().st_size > 0  # written by the chief


@pytest.mark.slow
def test_tune_bottlenecks(tmp_path):
    stdout, out = run_script("tune_bottlenecks", tmp_path)
    search(r"^budget 17,000,000 MACs; the narrowest configuration costs 14,258,176$", stdout)
    trained = int(search(r"^(\d) of 4 trials trained; the others were over budget$", stdout)[1])
    assert 1 <= trained <= 3  # the widest configurations (up to 19.9 M MACs) are refused
    macs = int(search(r"^best: conv2_width=\d+, .*; ([\d,]+) MACs \(budget 17,000,000\)", stdout)[1].replace(",", ""))
    assert 14_258_176 <= macs <= 17_000_000
    assert (out / "bottlenecks").is_dir()
