"""A tiny training run in its own process, for the tests that kill, resume and distribute training.

    python tests/train_child.py OUTPUT_DIR [--epochs N] [--strategy NAME] [--cpu-devices N] [--sync-bn]
        [--recipe NAME] [--augmentation NAME] [--patience N] [--stream] [--export-dir DIR]
        [--kill-at PATTERN [--kill-nth N]] [--before DEPTH]

Trains a CIFAR ResNet-8 on 64 digits at 16x16 (seed 7, deterministic ops, float32) and prints one JSON line
(`RESULT {...}`) with the replicas, the per-epoch losses, the test accuracy and the sha256 of the final weights
and optimizer variables (`distribute.weights_checksum`). `--augmentation` and `--patience` override the recipe's
augmentation and plateau patience; `--stream` makes the training pipeline stream (no in-memory cache), as it does
for a set too large for memory. `--export-dir` also exports the model (the `.keras` format only, to keep the
tests short).

`--before DEPTH` first trains a CIFAR ResNet-DEPTH for one epoch in the same process, the strategy given by its
name (a second `train` in one process under the same strategy name, another model's gradients).

`--kill-at PATTERN` is a fault: the process SIGKILLs itself at the N-th (`--kill-nth`, default 1) rename of a file
or directory onto a path that matches PATTERN (`fnmatch`, e.g. `*/checkpoints/epoch-0002`), after cutting a file
being renamed to half its size: the moment a file or directory is being written, as a kill mid-write leaves it.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def kill_at(pattern: str, nth: int) -> None:
    """SIGKILL this process at the `nth` `os.replace`/`os.rename` onto a path matching `pattern`, the source cut
    to half its size first when it is a file."""
    seen = [0]

    def guarded(real):
        def rename(src, dst, *args, **kwargs):
            if fnmatch.fnmatch(os.path.abspath(os.fspath(dst)), pattern):
                seen[0] += 1
                if seen[0] == nth:
                    if os.path.isfile(src):
                        os.truncate(src, os.path.getsize(src) // 2)
                    print(f"KILLED at {os.fspath(dst)}", flush=True)
                    os.kill(os.getpid(), signal.SIGKILL)
            return real(src, dst, *args, **kwargs)

        return rename

    os.replace, os.rename = guarded(os.replace), guarded(os.rename)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("output_dir")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--strategy", default="one_device")
    parser.add_argument("--cpu-devices", type=int, default=0)
    parser.add_argument("--sync-bn", action="store_true")
    parser.add_argument("--check-small-batch", action="store_true")
    parser.add_argument("--recipe", default="cifar")
    parser.add_argument("--augmentation", default=None)
    parser.add_argument("--patience", type=int, default=None)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--export-dir", default=None)
    parser.add_argument("--kill-at", default=None)
    parser.add_argument("--kill-nth", type=int, default=1)
    parser.add_argument("--before", type=int, default=None)
    args = parser.parse_args()
    if args.kill_at:
        kill_at(args.kill_at, args.kill_nth)

    from keras_convnets.trainer import distribute

    if args.cpu_devices:
        distribute.configure_cpu_devices(args.cpu_devices)
    strategy = distribute.get_strategy(args.strategy)  # first: MultiWorkerMirroredStrategy must come before other ops

    import tensorflow as tf

    import keras_convnets
    from keras_convnets import data, export, trainer
    from keras_convnets.trainer import recipes

    if args.stream:
        pipeline = data.train_pipeline

        def streaming(*a, **kw):
            return pipeline(*a, **{**kw, "cache": False})

        data.train_pipeline = streaming  # the trainer looks it up in keras_convnets.data

    if args.export_dir:
        bundle = export.export_bundle

        def keras_only(*a, **kw):
            return bundle(*a, **{**kw, "formats": ("keras",)})

        export.export_bundle = keras_only  # the trainer looks it up in keras_convnets.export

    recipe = recipes.get_recipe(args.recipe)
    overrides = {}
    if args.augmentation is not None:
        overrides["augmentation"] = args.augmentation
    if args.patience is not None:
        overrides["plateau_patience"] = args.patience
    if overrides:
        recipe = recipes.with_overrides(recipe, **overrides)

    def resnet8(**kwargs):
        return keras_convnets.CifarResNet(8, **kwargs)

    digits = data.load_digits(image_size=16)
    images, labels = digits.train_arrays
    tiny = data.ImageData(
        name="tiny",
        train=tf.data.Dataset.from_tensor_slices((images[:64], labels[:64])),
        test=digits.test.take(32),
        num_train=64,
        num_test=32,
        labels=digits.labels,
        image_size=16,
        horizontal_flip=False,
        train_arrays=(images[:64], labels[:64]),
    )
    report = {}
    if args.before:
        first = trainer.train(
            lambda **kw: keras_convnets.CifarResNet(args.before, **kw),
            tiny,
            epochs=1,
            batch_size=args.batch_size,
            image_size=16,
            strategy=args.strategy,
            mixed_precision="float32",
            print_fn=None,
            verbose=0,
        )
        report["before_loss"] = first.history[-1]["loss"]
    if args.check_small_batch:
        try:
            trainer.train(resnet8, tiny, epochs=1, batch_size=1, strategy=strategy, print_fn=None)
        except ValueError as error:
            report["small_batch_error"] = str(error)
        try:  # a global batch the replicas cannot share evenly
            trainer.train(
                resnet8, tiny, epochs=1, batch_size=strategy.num_replicas_in_sync + 1, strategy=strategy, print_fn=None
            )
        except ValueError as error:
            report["uneven_batch_error"] = str(error)
    result = trainer.train(
        resnet8,
        tiny,
        epochs=args.epochs,
        batch_size=args.batch_size,
        recipe=recipe,
        image_size=16,
        strategy=strategy,
        mixed_precision="float32",
        output_dir=args.output_dir,
        export_dir=args.export_dir,
        seed=7,
        deterministic=True,
        sync_bn=args.sync_bn,
        verbose=0,
    )
    report.update(
        replicas=strategy.num_replicas_in_sync,
        losses=[row["loss"] for row in result.history],
        learning_rates=[row["learning_rate"] for row in result.history],
        test_accuracy=result.metrics["test_accuracy"],
        synchronized=[layer.synchronized for layer in result.model.layers if hasattr(layer, "synchronized")][:1],
        checksum=distribute.weights_checksum(result.model),
        variables={  # per variable, to name the ones that differ
            v.path: distribute.weights_checksum([v])[:16] for v in distribute._variables(result.model)
        },
    )
    print("RESULT " + json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
