"""Search the bottleneck widths of ResNet-50 with keras-tuner, within a budget of multiply-accumulates.

`tuning.ResNetHyperModel` declares one hyperparameter per stage, `conv2_width` .. `conv5_width` (the width of the
1x1 reduction and the 3x3 conv of every block of that stage; the paper's 64, 128, 256, 512 scaled by 1/4 .. 1), and
builds each trial with the package's ResNet builder and the paper's recipe. A trial over `--max-macs` is refused
before any training (keras-tuner marks it FAILED). Trials are judged on a validation split held out of the
training set; the test split is evaluated once, for the best model.

    python training/tune_bottlenecks.py --data fashion_mnist --max-macs 60e6 --trials 20 --epochs 5
    python training/tune_bottlenecks.py --smoke  # seconds: 4 trials of narrow widths on the digits, some over budget
"""

import argparse
import tempfile

import keras
import keras_tuner

from keras_convnets import data, tuning


def arrays(dataset, split, size):
    images, labels = data.materialize(dataset, image_size=size, split=split)
    return images.astype("float32") / 127.5 - 1.0, labels


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fashion_mnist", help="a dataset name or a folder of classes")
    parser.add_argument("--max-macs", type=float, default=60e6, help="the budget per 32x32 image")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--output-dir", default=None, help="the tuner's trials (default: a temporary dir)")
    parser.add_argument("--smoke", action="store_true", help="a tiny search on the embedded digits, in seconds")
    args = parser.parse_args()
    output_dir = args.output_dir or tempfile.mkdtemp(prefix="tune_bottlenecks-")
    scales = (0.25, 0.5, 0.75, 1.0)
    if args.smoke:
        args.data, args.trials, args.epochs, args.batch_size, scales = "digits", 4, 1, 64, (0.125, 0.25)
        args.max_macs = 17e6  # between the narrowest (14.3 M) and the widest (19.9 M) of these scales

    dataset = data.load_dataset(args.data)
    if args.smoke:  # 384 training images (a random sample over the classes), 128 of them for validation
        dataset = data.holdout_validation(data.subset(dataset, max_train=384, seed=0), 128, seed=0)
    else:  # validation: a tenth of the training set drawn at random (a folder lists its images class by class)
        dataset = data.holdout_validation(dataset, 0.1, seed=0)
    x_train, y_train = arrays(dataset, "train", 32)
    x_val, y_val = arrays(dataset, "validation", 32)
    x_test, y_test = arrays(dataset, "test", 32)

    hypermodel = tuning.ResNetHyperModel(
        50,
        input_shape=(32, 32, 3),
        classes=dataset.num_classes,
        scales=scales,
        max_macs=args.max_macs,
        batch_size=args.batch_size,
        epochs=args.epochs,
        steps_per_epoch=len(x_train) // args.batch_size,
    )
    narrowest = hypermodel.check_budget()  # refuses a budget that no configuration fits
    print(f"budget {args.max_macs:,.0f} MACs; the narrowest configuration costs {narrowest.macs:,}")
    tuner = keras_tuner.RandomSearch(
        hypermodel,
        objective="val_accuracy",
        max_trials=args.trials,
        max_consecutive_failed_trials=args.trials + 1,  # trials over budget fail at once; go on
        seed=0,
        directory=output_dir,
        project_name="bottlenecks",
    )
    tuner.search(
        x_train, y_train, validation_data=(x_val, y_val), epochs=args.epochs, batch_size=args.batch_size, verbose=0
    )
    done = [t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"]
    print(f"{len(done)} of {len(tuner.oracle.trials)} trials trained; the others were over budget")
    best = tuner.oracle.get_best_trials(1)[0]
    model = tuner.get_best_models(1)[0]  # its weights as the trial left them
    macs = tuning.model_cost(model).macs
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    widths = ", ".join(f"{k}={v}" for k, v in sorted(best.hyperparameters.values.items()))
    print(f"best: {widths}; {macs:,} MACs (budget {args.max_macs:,.0f}); test accuracy {accuracy:.4f}")


if __name__ == "__main__":
    keras.utils.set_random_seed(0)
    main()
