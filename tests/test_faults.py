"""The fault table: faults and bad inputs, each with its expected outcome, driven by one parametrised test.

Every row names a fault, sets it up (`setup`: damages files, starts or kills processes, and returns the directory
whose files must survive), acts (`act`: resumes the run, trains, loads the folder or runs the command line) and
states what must come of it (`expect`): a clear error of one line (at the command line: its exit status, one line
on stderr, no traceback), a run that resumes from a named checkpoint or finishes, or a dataset that loads with the
bad file skipped or decoded. And for every row, nothing lost: every file that was in the guarded directory before
the act is byte for byte intact afterwards, except those the row names (`changes`, shell patterns: what the
expected outcome replaces or removes, e.g. the temporary files a killed process left). Files that appear must be
named there too.

Real faults: SIGKILL (a process killed while it renames a file into place, after its temporary file was cut to
half: `tests/train_child.py --kill-at`), a disk that fills (`os.fsync` failing with ENOSPC, as delayed allocation
reports it) or a permission denied (EACCES from `os.makedirs`/`os.mkdir`: the tests may run as root, where `chmod`
denies nothing) on the paths of one file, damaged files, images of every kind, a second process on a run directory.
Resuming rows stop the resumed run as its `fit` starts (`StopAtStart`): resumption itself is what they check; the
runs that resume and finish (`tests/test_resume.py`: equal to an uninterrupted run) are the SIGKILL rows here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fnmatch
import hashlib
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import warnings
import zlib
from typing import Callable

import keras
import numpy as np
import pytest

import keras_convnets
from keras_convnets import data
from keras_convnets.cli.main import main as cli
from keras_convnets.trainer import trainer
from tests.conftest import tiny_digits

CHILD = os.path.join(os.path.dirname(__file__), "train_child.py")
EPOCHS = 3
TRAIN = dict(epochs=EPOCHS, batch_size=16, recipe="cifar", mixed_precision="float32", seed=1)
# a run the command line can start quickly: ResNet-20 on the embedded digits, 1 step of 8 images
CLI_TRAIN = ("train", "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "8", "--mixed-precision", "float32")


def resnet8(**kwargs):
    return keras_convnets.CifarResNet(8, **kwargs)


# ----------------------------------------------------------------------------------------------- the run fixtures


class Interrupt(Exception):
    """Stops a run after the checkpoint of its second epoch, as an interruption would."""


class StopAfterTwoEpochs(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):  # after RunRecorder: the checkpoint of this epoch is written
        if epoch == 1:
            raise Interrupt


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory):
    """A run of 3 epochs stopped after its second: run.json, preprocessing.json, labels.txt, history.csv,
    checkpoints/epoch-0001 and epoch-0002, logs/."""
    run = tmp_path_factory.mktemp("faults") / "interrupted"
    with pytest.raises(Interrupt):
        trainer.train(
            resnet8, tiny_digits(), output_dir=str(run), callbacks=[StopAfterTwoEpochs()], **TRAIN, print_fn=None
        )
    assert sorted(os.listdir(run / "checkpoints")) == ["epoch-0001", "epoch-0002"]
    return run


@pytest.fixture(scope="module")
def finished_run(interrupted_run, tmp_path_factory):
    """The same run, resumed and finished: checkpoints epoch-0002 and epoch-0003, model.keras, metrics.json."""
    run = tmp_path_factory.mktemp("faults") / "finished"
    shutil.copytree(interrupted_run, run)
    trainer.train(resnet8, tiny_digits(), output_dir=str(run), **TRAIN, print_fn=None)
    assert (run / "metrics.json").exists() and (run / "checkpoints" / "epoch-0003").is_dir()
    return run


# ----------------------------------------------------------------------------------------------- outcomes


@dataclasses.dataclass
class Outcome:
    """What an act gave: `kind` is "error" (an exception, `text` its type and message), "exit" (the command
    line: `code`, `text` its stderr), "resumed" / "started" (the run's first lines and warnings), "finished"
    (a run that ended: its summary) or "loaded" (a dataset: its counts)."""

    kind: str
    text: str
    code: int | None = None


@dataclasses.dataclass(frozen=True)
class Expect:
    kind: str
    pattern: str  # a regular expression `text` must match (re.search)
    code: int | None = None


@dataclasses.dataclass
class Case:
    """One row's world: its temporary directory (`run` is `tmp/run`), the run fixtures (built when a row first
    asks for them), `monkeypatch`, `capsys`, and what `setup` leaves for `act` (`state`)."""

    tmp: str
    request: pytest.FixtureRequest
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture
    state: dict = dataclasses.field(default_factory=dict)

    @property
    def run(self) -> str:
        return os.path.join(self.tmp, "run")

    def copy(self, which: str = "interrupted") -> str:
        """A copy of the interrupted (or finished) run as the case's run."""
        shutil.copytree(self.request.getfixturevalue(f"{which}_run"), self.run)
        return self.run


@dataclasses.dataclass(frozen=True)
class Row:
    id: str
    fault: str
    setup: Callable[[Case], str]  # applies the fault; returns the guarded directory
    act: Callable[[Case], Outcome]
    expect: Expect
    changes: tuple[str, ...] = ()  # files of the guarded directory the expected outcome may change, remove or add
    slow: bool = False


class Started(Exception):
    """Raised as `fit` starts: the run got past its resume."""


class StopAtStart(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        raise Started


def _error(error: BaseException) -> Outcome:
    return Outcome("error", f"{type(error).__name__}: {error}")


def train_outcome(case: Case, *, stop_at_start: bool, output_dir: str | None = None, **overrides) -> Outcome:
    """Train the run of the fixtures in `output_dir` (default: the case's run). `stop_at_start` stops it as `fit`
    starts ("resumed" or "started", with the lines it printed and its warnings); else it runs to the end
    ("finished"). An exception is an "error"."""
    lines = []
    options = {**TRAIN, **overrides}
    callbacks = [StopAtStart()] if stop_at_start else []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = trainer.train(
                resnet8,
                tiny_digits(),
                output_dir=output_dir or case.run,
                callbacks=callbacks,
                print_fn=lines.append,
                verbose=0,
                **options,
            )
        except Started:
            result = None
        except Exception as error:  # the outcome under test
            return _error(error)
    notes = " | ".join(
        [line for line in lines if line.startswith("Resuming")]
        + [f"warning: {w.message}" for w in caught if issubclass(w.category, UserWarning)]
    )
    if result is not None:
        return Outcome("finished", f"{notes} | finished: {len(result.history)} epochs, {sorted(os.listdir(case.run))}")
    return Outcome("resumed" if any(line.startswith("Resuming") for line in lines) else "started", notes)


def resume(case: Case, **overrides) -> Outcome:
    return train_outcome(case, stop_at_start=True, **overrides)


def finish(case: Case, **overrides) -> Outcome:
    return train_outcome(case, stop_at_start=False, **overrides)


def command(case: Case, *argv: str, cwd: str = ".") -> Outcome:
    """`convnets ARGV` in this process, from `cwd` under the case's directory."""
    case.monkeypatch.chdir(os.path.join(case.tmp, cwd))
    case.monkeypatch.delenv("CONVNETS_TRACEBACK", raising=False)
    case.capsys.readouterr()
    code = cli(list(argv))
    return Outcome("exit", case.capsys.readouterr().err, code)


def then(first: Outcome, second: Callable[[], Outcome]) -> Outcome:
    """`first` (an error), then what the same call does once the fault is gone: both in one outcome."""
    after = second()
    return Outcome(first.kind, f"{first.text} || then {after.kind}: {after.text}", first.code)


# ----------------------------------------------------------------------------------------------- faults


@contextlib.contextmanager
def failing(case: Case, name: str, pattern: str, code: int):
    """`os.<name>` (fsync, makedirs or mkdir) raises OSError(`code`) on paths matching `pattern` (fnmatch; for
    fsync, the path of the file descriptor): a disk that fills, a directory that may not be written."""
    real = getattr(os, name)

    def path_of(target) -> str:
        if isinstance(target, int):
            return os.readlink(f"/proc/self/fd/{target}")
        return os.path.abspath(os.fspath(target))

    def faulty(target, *args, **kwargs):
        path = path_of(target)
        if fnmatch.fnmatch(path, pattern):
            raise OSError(code, os.strerror(code), path if name != "fsync" else None)
        return real(target, *args, **kwargs)

    with case.monkeypatch.context() as patch:
        patch.setattr(os, name, faulty)
        yield


def write(path: str, content: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(content)


def halve(path: str) -> None:
    with open(path, "rb") as f:
        content = f.read()
    write(path, content[: len(content) // 2])


def checkpoint_file(case: Case, epoch: int, name: str = "weights.weights.h5") -> str:
    return os.path.join(case.run, "checkpoints", f"epoch-{epoch:04d}", name)


def damaged_run(damage: Callable[[Case], None], which: str = "interrupted") -> Callable[[Case], str]:
    def setup(case: Case) -> str:
        case.copy(which)
        damage(case)
        return case.run

    return setup


def other_architecture_weights(case: Case) -> None:
    """epoch-0002's weights file replaced by a ResNet-14's (same input and classes, another architecture)."""
    other = keras_convnets.CifarResNet(14, input_shape=(16, 16, 3), classes=10)
    os.unlink(checkpoint_file(case, 2))
    other.save_weights(checkpoint_file(case, 2))


def subprocess_env() -> dict:
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def child(case: Case, output_dir: str, *extra: str, timeout: float = 420) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, CHILD, output_dir, *extra],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=subprocess_env(),
    )


def killed_while_writing(pattern: str, *extra: str) -> Callable[[Case], str]:
    """Start `train_child.py` on the case's run, SIGKILLed at the rename onto a path matching `pattern`."""

    def setup(case: Case) -> str:
        arguments = tuple(os.path.join(case.tmp, "export") if a == "EXPORT" else a for a in extra)
        victim = child(case, case.run, "--kill-at", pattern, *arguments)
        assert victim.returncode == -9 and "KILLED at" in victim.stdout, victim.stderr[-3000:]
        case.state["extra"] = arguments
        return case.tmp

    return setup


def rerun_child(case: Case) -> Outcome:
    """The same command again; "finished" with what it printed, the run's files and the export's."""
    done = child(case, case.run, *case.state["extra"])
    if done.returncode != 0:
        return Outcome("exit", done.stderr[-2000:], done.returncode)
    lines = [line for line in done.stdout.splitlines() if line.startswith(("Resuming", "Training"))]
    run_files = sorted(os.listdir(case.run))
    model = keras.saving.load_model(os.path.join(case.run, "model.keras"), safe_mode=True)  # whole, it loads
    export, source = None, None
    if os.path.isdir(os.path.join(case.tmp, "export")):
        export = sorted(os.listdir(os.path.join(case.tmp, "export")))
        with open(os.path.join(case.tmp, "export", "model_card.json")) as f:
            source = json.load(f)["source"]  # the run directory's name (`export_model(output_dir=...)`)
    return Outcome(
        "finished", f"{' | '.join(lines)} | finished: {run_files} model {model.name} export {export} from {source}"
    )


def hold_the_lock(case: Case) -> str:
    """Another process holds the run directory's lock, as a second training process would."""
    case.copy()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from keras_convnets.trainer import run_dir\n"
            "with run_dir.lock_run_dir(sys.argv[1]):\n    print('locked', flush=True); sys.stdin.read()",
            case.run,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    case.state["holder"] = holder
    assert holder.stdout.readline().strip() == "locked"
    return case.run


def refused_while_held(case: Case) -> Outcome:
    holder = case.state["holder"]
    try:
        outcome = command(case, *CLI_TRAIN, "--output-dir", case.run)
        return Outcome(outcome.kind, outcome.text.replace(str(holder.pid), "HOLDER"), outcome.code)
    finally:
        holder.kill()
        holder.wait()


# ----------------------------------------------------------------------------------------------- images


def png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def decompression_bomb(side: int = 20000) -> bytes:
    """A valid grayscale PNG of side x side black pixels: about 390 KB that decode into side * side * 3 bytes
    (1.2 GB at 20000)."""
    compressor, rows, parts = zlib.compressobj(9), b"\x00" * (side + 1) * 500, []
    for _ in range(side // 500):
        parts.append(compressor.compress(rows))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")


RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(8, 8, 3)).astype("uint8")


def image_folder(case: Case, extra: dict[str, bytes]) -> str:
    """train/{a,b}/ and test/{a,b}/ with 3 good 8x8 PNGs per training class and 1 per test class, and the
    `extra` files (relative paths under train/)."""
    root = os.path.join(case.tmp, "folder")
    for split, count in (("train", 3), ("test", 1)):
        for label in ("a", "b"):
            for i in range(count):
                write(
                    os.path.join(root, split, label, f"{i}.png"), png(RNG.integers(0, 256, (8, 8, 3)).astype("uint8"))
                )
    for name, content in extra.items():
        write(os.path.join(root, "train", name), content)
    return root


def folder_with(extra: Callable[[], dict[str, bytes]]) -> Callable[[Case], str]:
    def setup(case: Case) -> str:
        return image_folder(case, extra())

    return setup


def load_folder(case: Case) -> Outcome:
    """Load the case's folder and read its training split as evaluation reads it: the counts, the warnings, and
    the pixels of `train/a/x.png` when it was decoded (it sorts last in class a)."""
    root = os.path.join(case.tmp, "folder")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = data.load_dataset(root)
    images, labels = data.materialize(loaded, image_size=8, split="train")
    batches = list(data.train_pipeline(loaded, batch_size=4, image_size=8, augmentation="none", epochs=1))
    case.state["decoded"] = images
    notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    return Outcome(
        "loaded",
        f"train {loaded.num_train} test {loaded.num_test} decoded {len(images)} labels {np.bincount(labels).tolist()} "
        f"batches {[tuple(x.shape) for x, _ in batches]} warnings {notes}",
    )


def loads_with_pixels(expected: Callable[[], np.ndarray]) -> Callable[[Case], Outcome]:
    """`load_folder`, and the last image of class a (x.png) decoded to exactly `expected`."""

    def act(case: Case) -> Outcome:
        outcome = load_folder(case)
        np.testing.assert_array_equal(case.state["decoded"][3], expected())
        return outcome

    return act


def symlink_loops(case: Case) -> str:
    root = image_folder(case, {})
    os.symlink("loop.png", os.path.join(root, "train", "a", "loop.png"))  # a link to itself: ELOOP when opened
    os.symlink("..", os.path.join(root, "train", "a", "up"))  # a directory cycle, were links followed
    os.symlink(os.path.join(root, "train"), os.path.join(root, "train", "b", "again"))
    return root


def every_bad_image() -> dict[str, bytes]:
    good = png(RGB)
    return {
        "a/corrupt.png": b"\x89PNG\r\n\x1a\n" + bytes(RNG.integers(0, 256, 300, dtype="uint8")),
        "a/truncated.png": good[: len(good) // 2],
        "a/truncated.jpg": jpeg(np.tile(RGB, (8, 8, 1)))[:2000],
        "a/empty.png": b"",
        "a/gray.png": png(RGB[..., 0]),
        "b/rgba.png": png(np.dstack([RGB, RGB[..., :1]])),
        "b/bomb.png": decompression_bomb(),
    }


def train_on_every_bad_image(case: Case) -> Outcome:
    out = command(
        case, *CLI_TRAIN, "--dataset", "folder", "--image-size", "8", "--output-dir", "r", "--export-dir", "e"
    )
    if out.code != 0:
        return out
    metrics = json.loads(open(os.path.join(case.tmp, "r", "metrics.json")).read())
    return Outcome("finished", f"trained {metrics['train_examples']} train images, stderr {out.text.strip()!r}")


# ----------------------------------------------------------------------------------------------- .keras files


def unsafe_keras_file(case: Case) -> str:
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Lambda(lambda x: x * 2.0)(inputs))
    keras.Model(inputs, outputs).save(os.path.join(case.tmp, "model.keras"))
    return case.tmp


def garbage_keras_file(case: Case) -> str:
    write(os.path.join(case.tmp, "model.keras"), b"PK\x03\x04" + bytes(RNG.integers(0, 256, 500, dtype="uint8")))
    return case.tmp


def export_keras_file(case: Case) -> Outcome:
    return command(case, "export", "model.keras", "--format", "keras", "--output", "exported")


def resnet18_state_dict(case: Case) -> str:
    """A torchvision-style state dict (`.npz`, zeros of torchvision's names and shapes) of ResNet-18."""
    from keras_convnets.weights import torchvision

    family = torchvision._torchvision_families()["resnet18"]
    model = keras_convnets.get_model("resnet18", stride_in="3x3", input_shape=(32, 32, 3), classes=10)
    state = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            roles = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
            kind = "bn"
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            roles, kind = (
                {"kernel": "weight", "bias": "bias"},
                "conv" if isinstance(layer, keras.layers.Conv2D) else "dense",
            )
        else:
            continue
        for role, suffix in roles.items():
            variable = getattr(layer, role, None)
            if variable is not None:
                shape = torchvision._torch_shape(tuple(variable.shape), role, kind)
                state[f"{family.torch_name(layer.name)}.{suffix}"] = np.zeros(shape, "float32")
    np.savez(os.path.join(case.tmp, "resnet18.npz"), **state)
    return case.tmp


def load_as_resnet34(case: Case) -> Outcome:
    from keras_convnets.weights import from_torchvision

    try:
        from_torchvision(os.path.join(case.tmp, "resnet18.npz"), "resnet34", input_shape=(32, 32, 3), classes=10)
    except Exception as error:  # the outcome under test
        return _error(error)
    return Outcome("finished", "loaded")


# ----------------------------------------------------------------------------------------------- the table

ONE_LINE_WARNING = r"warning: Skipped checkpoints that do not load \([^|]*epoch-0002"
RESUMED_FROM_1 = r"Resuming from \S+epoch-0001 \(epoch 1 of 3\)\."
RESUMED_FROM_2 = r"Resuming from \S+epoch-0002 \(epoch 2 of 3\)\."
LOGS = ("logs/*",)  # TensorBoard opens new event files as fit starts
# what a rerun after a SIGKILL rewrites or adds: the dead process's lock file, the files of the epochs it trains
RERUN = ("run/.lock", "run/history.csv", "run/logs/*", "run/model.keras", "run/metrics.json", "run/curves.png")

FAULTS = [
    # --- checkpoints
    Row(
        "torn-newest-checkpoint",
        "the newest checkpoint's weights file cut short (a power loss before it was complete)",
        damaged_run(lambda case: write(checkpoint_file(case, 2), open(checkpoint_file(case, 2), "rb").read()[:1000])),
        resume,
        Expect("resumed", RESUMED_FROM_1 + r".*" + ONE_LINE_WARNING + r": OSError"),
        LOGS,
    ),
    Row(
        "garbage-newest-weights",
        "the newest checkpoint's weights file is random bytes",
        damaged_run(lambda case: write(checkpoint_file(case, 2), bytes(RNG.integers(0, 256, 4096, dtype="uint8")))),
        resume,
        Expect("resumed", RESUMED_FROM_1 + r".*" + ONE_LINE_WARNING),
        LOGS,
    ),
    Row(
        "garbage-state-json",
        "the newest checkpoint's state.json is not JSON",
        damaged_run(lambda case: write(checkpoint_file(case, 2, "state.json"), b'{"epoch": 2, "hist')),
        resume,
        Expect("resumed", RESUMED_FROM_1 + r".*" + ONE_LINE_WARNING + r".*JSONDecodeError"),
        LOGS,
    ),
    Row(
        "state-json-of-another-shape",
        "the newest checkpoint's state.json is JSON without an integer epoch",
        damaged_run(lambda case: write(checkpoint_file(case, 2, "state.json"), b'{"epoch": "two", "history": []}')),
        resume,
        Expect("resumed", RESUMED_FROM_1 + r".*" + ONE_LINE_WARNING + r".*is not a checkpoint state"),
        LOGS,
    ),
    Row(
        "missing-weights-file",
        "the newest checkpoint lacks its weights file (a partial copy of the run)",
        damaged_run(lambda case: os.unlink(checkpoint_file(case, 2))),
        resume,
        Expect("resumed", RESUMED_FROM_1),
        LOGS,
    ),
    Row(
        "checkpoint-of-another-architecture",
        "the newest checkpoint holds the weights of another architecture (a CIFAR ResNet-14's)",
        damaged_run(other_architecture_weights),
        resume,
        Expect("resumed", RESUMED_FROM_1 + r".*" + ONE_LINE_WARNING + r": ValueError"),
        LOGS,
    ),
    Row(
        "every-checkpoint-garbage",
        "no checkpoint of the run loads",
        damaged_run(
            lambda case: [write(checkpoint_file(case, e), b"\x89HDF\r\n\x1a\n garbage") for e in (1, 2)] and None
        ),
        resume,
        Expect("error", r"^ValueError: No checkpoint of the run loads \(\S+epoch-0002: OSError.*; \S+epoch-0001: "),
    ),
    Row(
        "partial-checkpoint-left-by-a-kill",
        "a checkpoint's temporary directory, half written, left by a killed run",
        damaged_run(
            lambda case: (
                [
                    write(
                        os.path.join(case.run, "checkpoints", ".epoch-0003.x1y2z3.partial", "weights.weights.h5"),
                        b"half",
                    ),
                    shutil.copytree(
                        os.path.dirname(checkpoint_file(case, 2)),
                        os.path.join(case.run, "checkpoints", ".epoch-0003.a1b2c3.partial"),
                    ),
                ]
                and None
            )
        ),
        resume,
        Expect("resumed", RESUMED_FROM_2 + r"$"),
        ("checkpoints/.epoch-0003.*", *LOGS),
    ),
    Row(
        "temporary-files-left-by-a-kill",
        "the temporary files of run.json, history.csv and model.keras, half written, left by a killed run",
        damaged_run(
            lambda case: (
                [
                    write(os.path.join(case.run, ".run.json.k3j4h5g6.tmp"), b'{"model": "res'),
                    write(os.path.join(case.run, ".history.csv.a0b1c2d3.tmp"), b"epoch,iter"),
                    write(os.path.join(case.run, ".model.keras.tmp-4242.keras"), b"PK\x03\x04 half"),
                ]
                and None
            )
        ),
        resume,
        Expect("resumed", RESUMED_FROM_2 + r"$"),
        (".run.json.*.tmp", ".history.csv.*.tmp", ".model.keras.tmp-*.keras", *LOGS),
    ),
    # --- the run directory
    Row(
        "garbage-run-json",
        "run.json is not JSON",
        damaged_run(lambda case: write(os.path.join(case.run, "run.json"), b'{"model": "resnet8", "data')),
        resume,
        Expect("error", r"^ValueError: \S+run\.json is not valid JSON \(.*\): the run's configuration is damaged\."),
    ),
    Row(
        "garbage-preprocessing-json",
        "preprocessing.json is not JSON",
        damaged_run(lambda case: write(os.path.join(case.run, "preprocessing.json"), b"\x00\x01 not json")),
        resume,
        Expect("error", r"^ValueError: \S+preprocessing\.json cannot be read \(JSONDecodeError: .*Nothing was written"),
    ),
    Row(
        "another-configuration",
        "the run directory holds a run of another configuration (4 epochs asked, 3 there)",
        damaged_run(lambda case: None),
        lambda case: resume(case, epochs=4),
        Expect("error", r"holds a run with another configuration \(epochs: 3 there, 4 now\)\. .*Nothing was written"),
    ),
    Row(
        "not-a-run-directory",
        "--output-dir is a non-empty directory without run.json (someone's photos)",
        lambda case: write(os.path.join(case.run, "photo.jpg"), b"\xff\xd8\xff mine") or case.run,
        lambda case: command(case, *CLI_TRAIN, "--output-dir", "run"),
        Expect("exit", r"^convnets train: error: `output_dir` 'run' is not empty and holds no run\.json", 2),
    ),
    Row(
        "second-process-on-the-run",
        "a second `convnets train` on a run directory whose lock another process holds",
        hold_the_lock,
        refused_while_held,
        Expect("exit", r"^convnets train: error: RunDirectoryBusyError: .*another training process \(pid HOLDER\)", 1),
    ),
    # --- a disk that fills, a permission denied
    Row(
        "disk-full-writing-a-checkpoint",
        "the disk fills while the checkpoint of epoch 3 is written (ENOSPC), then space is freed",
        damaged_run(lambda case: None),
        lambda case: then(
            _failing_train(case, "fsync", "*/checkpoints/.epoch-0003.*", errno.ENOSPC), lambda: resume(case)
        ),
        Expect("error", r"^OSError: \[Errno 28\] No space left on device \|\| then resumed: " + RESUMED_FROM_2),
        LOGS,
    ),
    Row(
        "disk-full-writing-run-json",
        "the disk fills as the first start writes run.json",
        lambda case: case.tmp,
        lambda case: _failing_command(case, "fsync", "*/fresh/.run.json.*", errno.ENOSPC, "--output-dir", "fresh"),
        Expect("exit", r"^convnets train: error: OSError: \[Errno 28\] No space left on device$", 1),
    ),
    Row(
        "disk-full-writing-the-final-model",
        "the disk fills while the final model.keras is written, then space is freed",
        damaged_run(
            lambda case: [os.unlink(os.path.join(case.run, name)) for name in ("model.keras", "metrics.json")] and None,
            "finished",
        ),
        lambda case: then(_failing_train(case, "fsync", "*/.model.keras.tmp-*", errno.ENOSPC), lambda: finish(case)),
        Expect(
            "error",
            r"^OSError: \[Errno 28\] No space left on device \|\| then finished: Resuming from \S+epoch-0003 "
            r"\(epoch 3 of 3\)\..*'metrics\.json', 'model\.keras'",
        ),
        ("model.keras", "metrics.json", "history.csv", "curves.png", *LOGS),
    ),
    Row(
        "permission-denied-creating-the-run-directory",
        "the run directory may not be created (EACCES)",
        lambda case: case.tmp,
        lambda case: _failing_command(case, "makedirs", "*/denied", errno.EACCES, "--output-dir", "denied"),
        Expect("exit", r"^convnets train: error: PermissionError: \[Errno 13\] Permission denied: '\S+denied'$", 1),
    ),
    Row(
        "permission-denied-writing-a-checkpoint",
        "the checkpoint of epoch 3 may not be created in checkpoints/ (EACCES)",
        damaged_run(lambda case: None),
        lambda case: _failing_train(case, "mkdir", "*/checkpoints/.epoch-0003.*", errno.EACCES),
        Expect(
            "error", r"^PermissionError: \[Errno 13\] Permission denied: '\S+/checkpoints/\.epoch-0003\.\w+\.partial'"
        ),
        LOGS,
    ),
    Row(
        "permission-denied-writing-the-export",
        "the export's staging directory may not be created beside --export-dir (EACCES), after training",
        lambda case: case.copy("finished") and case.tmp,
        lambda case: _failing_train(
            case, "mkdir", "*/.export.partial-*", errno.EACCES, export_dir=case.tmp + "/export"
        ),
        Expect("error", r"^PermissionError: \[Errno 13\] Permission denied: '\S+/\.export\.partial-\w+'$"),
        ("run/model.keras", "run/metrics.json", "run/history.csv", "run/curves.png"),
    ),
    # --- --export-dir, refused before training
    Row(
        "export-dir-is-the-run-directory",
        "--export-dir names the run directory (of a run that exists)",
        damaged_run(lambda case: None),
        lambda case: command(case, *CLI_TRAIN, "--output-dir", "run", "--export-dir", "run"),
        Expect(
            "exit", r"^convnets train: error: `export_dir` must not be the run directory .*it is the run directory", 2
        ),
    ),
    Row(
        "export-dir-contains-a-new-run-directory",
        "--export-dir is the parent of a run directory not created yet",
        lambda case: case.tmp,
        lambda case: command(case, *CLI_TRAIN, "--output-dir", "runs/new", "--export-dir", "runs"),
        Expect("exit", r"^convnets train: error: `export_dir` must not .*it contains the run directory 'runs/new'", 2),
    ),
    Row(
        "export-dir-is-the-working-directory",
        "--export-dir . (the working directory, with the user's files)",
        lambda case: write(os.path.join(case.tmp, "work", "notes.txt"), b"mine") or case.tmp,
        lambda case: command(case, *CLI_TRAIN, "--output-dir", "../r", "--export-dir", ".", cwd="work"),
        Expect(
            "exit", r"^convnets train: error: `export_dir` is refused before training: .*is the working directory", 2
        ),
    ),
    Row(
        "export-dir-is-not-an-export",
        "--export-dir is a non-empty directory that is not a previous export",
        lambda case: write(os.path.join(case.tmp, "photos", "a.jpg"), b"\xff\xd8\xff mine") or case.tmp,
        lambda case: command(case, *CLI_TRAIN, "--output-dir", "r", "--export-dir", "photos"),
        Expect("exit", r"is a directory of 1 entry that is not a previous export \(no model_card\.json\)", 2),
    ),
    Row(
        "export-dir-is-a-file",
        "--export-dir is a regular file",
        lambda case: write(os.path.join(case.tmp, "model.bin"), b"weights") or case.tmp,
        lambda case: command(case, *CLI_TRAIN, "--output-dir", "r", "--export-dir", "model.bin"),
        Expect("exit", r"is a file, and this export writes a directory", 2),
    ),
    # --- images in a folder
    Row(
        "corrupt-image",
        "a PNG signature followed by garbage",
        folder_with(lambda: {"a/x.png": b"\x89PNG\r\n\x1a\n" + bytes(RNG.integers(0, 256, 300, dtype="uint8"))}),
        load_folder,
        Expect("loaded", r"^train 6 test 2 decoded 6 .*Skipped 1 files that are not images"),
    ),
    Row(
        "truncated-png",
        "a PNG cut in half (its header intact)",
        folder_with(lambda: {"a/x.png": png(RGB)[: len(png(RGB)) // 2]}),
        load_folder,  # listed (the header reads), then dropped by the decoder
        Expect("loaded", r"^train 7 test 2 decoded 6 labels \[3, 3\] batches \[\(4, 8, 8, 3\)\] warnings \[\]$"),
    ),
    Row(
        "truncated-jpeg",
        "a 64x64 JPEG cut at three quarters (its header intact)",
        folder_with(lambda: {"a/x.jpg": jpeg(np.tile(RGB, (8, 8, 1)))[: len(jpeg(np.tile(RGB, (8, 8, 1)))) * 3 // 4]}),
        load_folder,
        Expect("loaded", r"^train 7 test 2 decoded 6 labels \[3, 3\] batches \[\(4, 8, 8, 3\)\] warnings \[\]$"),
    ),
    Row(
        "zero-byte-image",
        "an empty file named .png",
        folder_with(lambda: {"a/x.png": b""}),
        load_folder,
        Expect("loaded", r"^train 6 test 2 decoded 6 .*Skipped 1 files that are not images"),
    ),
    Row(
        "grayscale-image",
        "a one-channel PNG",
        folder_with(lambda: {"a/x.png": png(RGB[..., 0])}),
        loads_with_pixels(lambda: np.repeat(RGB[..., :1], 3, axis=-1)),  # its one channel, three times
        Expect("loaded", r"^train 7 test 2 decoded 7 labels \[4, 3\] .*warnings \[\]$"),
    ),
    Row(
        "rgba-image",
        "a PNG with an alpha channel",
        folder_with(lambda: {"a/x.png": png(np.dstack([RGB, np.full((8, 8, 1), 7, "uint8")]))}),
        loads_with_pixels(lambda: RGB),  # the colours, without the alpha
        Expect("loaded", r"^train 7 test 2 decoded 7 labels \[4, 3\] .*warnings \[\]$"),
    ),
    Row(
        "huge-image",
        "a 20000x20000 PNG of 390 KB (a decompression bomb: 1.2 GB decoded)",
        folder_with(lambda: {"a/x.png": decompression_bomb()}),
        load_folder,
        Expect("loaded", r"^train 6 test 2 decoded 6 .*Skipped 1 images of more than 89,478,485 pixels .*a/x\.png"),
    ),
    Row(
        "symlink-loops",
        "a link to itself, a link to its parent and a link to the split in the class folders",
        symlink_loops,
        load_folder,  # os.walk does not follow links to directories; the link to itself does not open
        Expect("loaded", r"^train 6 test 2 decoded 6 .*Skipped 1 files that are not images"),
    ),
    Row(
        "every-bad-image-at-once-trained",
        "all of the images above in one folder, trained on by `convnets train`",
        folder_with(every_bad_image),
        train_on_every_bad_image,
        Expect("finished", r"^trained 10 train images, stderr ''$"),
        ("r/*", "e/*"),
        slow=True,
    ),
    Row(
        "torchvision-weights-of-another-architecture",
        "a torchvision state dict of ResNet-18 (.npz) loaded as ResNet-34",
        resnet18_state_dict,
        load_as_resnet34,
        Expect("error", r"^ValueError: The torchvision resnet34 state dict has no tensor 'layer1\.2\.conv1\.weight'"),
    ),
    # --- .keras files
    Row(
        "keras-file-needing-unsafe-deserialisation",
        "a .keras file with a Lambda layer (Python code), exported",
        unsafe_keras_file,
        export_keras_file,
        Expect("exit", r"^convnets export: error: `source` could not be loaded as a Keras model\. .*safe_mode", 2),
    ),
    Row(
        "garbage-keras-file",
        "a .keras file that is not a zip of a model",
        garbage_keras_file,
        export_keras_file,
        Expect("exit", r"^convnets export: error: `source` could not be loaded as a Keras model\.", 2),
    ),
    # --- SIGKILL while a file is written; the same command again
    Row(
        "sigkill-writing-run-json",
        "SIGKILL while the first start writes run.json",
        killed_while_writing("*/run/run.json", "--epochs", "1"),
        rerun_child,
        Expect("finished", r"^Training [^|]*\| finished: .*'metrics\.json', 'model\.keras'"),
        ("run/*",),
        slow=True,
    ),
    Row(
        "sigkill-writing-a-checkpoint",
        "SIGKILL while the checkpoint of epoch 2 is written (its state.json half written)",
        killed_while_writing("*/checkpoints/.epoch-0002.*.partial/state.json", "--epochs", "2"),
        rerun_child,
        Expect("finished", r"Resuming from \S+epoch-0001 \(epoch 1 of 2\)\. \| finished: .*'model\.keras'"),
        ("run/checkpoints/.epoch-0002.*", "run/checkpoints/epoch-0002/*", *RERUN),
        slow=True,
    ),
    Row(
        "sigkill-writing-the-final-model",
        "SIGKILL while model.keras is written",
        killed_while_writing("*/run/model.keras", "--epochs", "1"),
        rerun_child,
        Expect("finished", r"Resuming from \S+epoch-0001 \(epoch 1 of 1\)\. \| finished: .*'model\.keras'"),
        ("run/.model.keras.tmp-*", *RERUN),
        slow=True,
    ),
    Row(
        "sigkill-writing-the-export",
        "SIGKILL while the export is renamed into place",
        killed_while_writing("*/export", "--epochs", "1", "--export-dir", "EXPORT"),
        rerun_child,
        Expect(
            "finished",
            r"Resuming from \S+epoch-0001 \(epoch 1 of 1\)\. .*export \['labels\.txt', 'model\.keras', "
            r"'model_card\.json'\] from run$",
        ),
        (*RERUN, "export/*"),
        slow=True,
    ),
]


def _failing_train(case: Case, name: str, pattern: str, code: int, **overrides) -> Outcome:
    with failing(case, name, pattern, code):
        return finish(case, **overrides)


def _failing_command(case: Case, name: str, pattern: str, code: int, *argv: str) -> Outcome:
    with failing(case, name, pattern, code):
        return command(case, *CLI_TRAIN, *argv)


# ----------------------------------------------------------------------------------------------- the driver


def tree_hashes(root: str) -> dict[str, str]:
    """sha256 of every file (and the target of every link) under `root`, by relative path; links are not
    followed."""
    out = {}
    for directory, dirnames, files in os.walk(root):
        for name in files + [d for d in dirnames if os.path.islink(os.path.join(directory, d))]:
            path = os.path.join(directory, name)
            key = os.path.relpath(path, root)
            if os.path.islink(path):
                out[key] = "link -> " + os.readlink(path)
            else:
                with open(path, "rb") as f:
                    out[key] = hashlib.sha256(f.read()).hexdigest()
    return out


def check_outcome(outcome: Outcome, expect: Expect) -> None:
    assert outcome.kind == expect.kind, outcome
    if outcome.kind in ("error", "exit"):
        text = outcome.text.strip()
        assert "Traceback" not in text, text
        assert len(text.splitlines()) == 1, f"not one line: {text!r}"  # a clear error is one line
        assert expect.code is None or outcome.code == expect.code, outcome
    assert re.search(expect.pattern, outcome.text.strip()), f"{expect.pattern!r} not in {outcome.text!r}"


def check_nothing_lost(before: dict[str, str], after: dict[str, str], changes: tuple[str, ...]) -> None:
    def named(path: str) -> bool:
        return any(fnmatch.fnmatch(path, pattern) for pattern in changes)

    lost = {path for path, digest in before.items() if after.get(path) != digest and not named(path)}
    assert not lost, f"changed or lost: {sorted(lost)}"
    appeared = {path for path in set(after) - set(before) if not named(path)}
    assert not appeared, f"left behind: {sorted(appeared)}"


@pytest.fixture
def case(tmp_path, request, monkeypatch, capsys):
    return Case(str(tmp_path), request, monkeypatch, capsys)


def test_the_table_has_the_faults_the_issue_lists():
    ids = [row.id for row in FAULTS]
    assert len(ids) == len(set(ids)) >= 25
    for word in ("sigkill-writing-a-checkpoint", "sigkill-writing-run-json", "sigkill-writing-the-final-model"):
        assert word in ids
    for word in ("sigkill-writing-the-export", "torn-newest-checkpoint", "garbage-newest-weights", "disk-full"):
        assert any(i.startswith(word) for i in ids), word
    for word in ("permission-denied", "second-process", "corrupt-image", "truncated", "zero-byte", "grayscale"):
        assert any(i.startswith(word) for i in ids), word
    for word in ("rgba", "huge", "checkpoint-of-another-architecture", "keras-file-needing-unsafe", "symlink"):
        assert any(i.startswith(word) for i in ids), word


@pytest.mark.parametrize(
    "row", [pytest.param(row, id=row.id, marks=[pytest.mark.slow] if row.slow else []) for row in FAULTS]
)
def test_fault(row, case):
    guarded = row.setup(case)
    before = tree_hashes(guarded)
    outcome = row.act(case)
    check_outcome(outcome, row.expect)
    check_nothing_lost(before, tree_hashes(guarded), row.changes)
