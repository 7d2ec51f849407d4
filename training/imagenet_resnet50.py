"""Train ResNet-50 on ImageNet (or any folder of class folders) with tf.distribute.MirroredStrategy.

One replica per GPU (or the CPU); the model and its optimizer are built and compiled inside `strategy.scope()`, the
global batch is the per-replica batch times the replicas, and the learning rate scales linearly with it. The recipe
is `recipes.get_recipe("imagenet")` (He et al. 2016, Section 3.4): SGD with momentum 0.9 and weight decay 1e-4,
lr 0.1 at batch 256 divided by 10 when the accuracy on a validation split (a tenth of the training set, held out
at random) stops improving, the test split evaluated once at the end; shorter side resized at random
in [256, 480] and a 224x224 crop with flips, per-pixel mean subtraction.

    python training/imagenet_resnet50.py --data imagenet2012 --data-dir ~/tensorflow_datasets --epochs 90
    python training/imagenet_resnet50.py --data /data/imagenet/train --per-replica-batch 64 --output-dir runs/r50
    python training/imagenet_resnet50.py --smoke      # seconds: 2 CPU replicas, the embedded digits at 32x32
"""

import argparse
import os
import tempfile

import keras
import tensorflow as tf

from keras_convnets import ResNet50, data
from keras_convnets.trainer import recipes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="imagenet2012", help="a tensorflow-datasets name or a folder of classes")
    parser.add_argument("--data-dir", default=None, help="where tensorflow-datasets keeps its data")
    parser.add_argument("--epochs", type=int, default=90)
    parser.add_argument("--per-replica-batch", type=int, default=32)
    parser.add_argument("--output-dir", default=None, help="the trained model (default: a temporary dir)")
    parser.add_argument("--smoke", action="store_true", help="a tiny run on 2 logical CPU devices, in seconds")
    args = parser.parse_args()
    output_dir = args.output_dir or tempfile.mkdtemp(prefix="imagenet_resnet50-")

    if args.smoke:  # two logical devices on the CPU, so that there is something to mirror over
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices)
        dataset, image_size, epochs, steps = data.load_dataset("digits"), 32, 2, 3
    else:
        strategy = tf.distribute.MirroredStrategy()
        dataset, image_size, epochs, steps = (
            data.load_dataset(args.data, data_dir=args.data_dir),
            224,
            args.epochs,
            None,
        )
    # the plateau decisions watch a validation split held out of the training set; the test split is evaluated
    # once, at the end
    dataset = data.holdout_validation(dataset, 0.1, seed=0)
    batch_size = args.per_replica_batch * strategy.num_replicas_in_sync
    steps = steps or data.steps_per_epoch_for(dataset.num_train, batch_size)
    print(f"replicas: {strategy.num_replicas_in_sync}, global batch {batch_size}, {steps} steps an epoch")

    recipe = recipes.get_recipe("imagenet")
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = ResNet50(input_shape=(image_size, image_size, 3), classes=dataset.num_classes)
        learning_rate = recipes.learning_rate_schedule(
            recipe, batch_size=batch_size, steps_per_epoch=steps, epochs=epochs
        )
        model.compile(
            optimizer=recipes.make_optimizer(recipe, learning_rate),
            loss=recipes.make_loss(recipe),
            metrics=["accuracy"],
        )

    preprocessing = data.compute_preprocessing(
        recipe.preprocessing, dataset, image_size=image_size, augmentation=recipe.augmentation, max_examples=10_000
    )
    common = dict(batch_size=batch_size, image_size=image_size, augmentation=recipe.augmentation)
    train = data.train_pipeline(
        dataset, **common, preprocessing=preprocessing, epochs=epochs, steps_per_epoch=steps, seed=0
    )
    validation = data.eval_pipeline(dataset, **common, preprocessing=preprocessing, split="validation")
    test = data.eval_pipeline(dataset, **common, preprocessing=preprocessing)
    callbacks = [  # the "plateau" schedule: divide by 10 when the validation accuracy stops improving
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_accuracy", mode="max", factor=recipe.decay_factor, patience=recipe.plateau_patience
        )
    ]
    history = model.fit(
        train, epochs=epochs, steps_per_epoch=steps, validation_data=validation, callbacks=callbacks, verbose=2
    )
    model.save(os.path.join(output_dir, "model.keras"))
    losses = history.history["loss"]
    accuracy = model.evaluate(test, verbose=0, return_dict=True)["accuracy"]
    print(f"resnet50: training loss {losses[0]:.4f} -> {losses[-1]:.4f}, test accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
