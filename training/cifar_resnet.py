"""Train a CIFAR ResNet (He et al. 2016, Section 4.2) on Fashion-MNIST or CIFAR-10 with the paper's recipe.

The recipe is `recipes.get_recipe("cifar")`: SGD with momentum 0.9 and weight decay 1e-4, learning rate 0.1 divided
by 10 at 32k and 48k iterations (64k in all at batch 128; shortened to `--epochs` in proportion), 4-pixel pad-and-crop
with horizontal flips, per-pixel mean subtraction. Fashion-MNIST's 28x28 grayscale images are resized to 32x32 and
repeated to 3 channels. Run the same command again with the same `--output-dir` and it resumes after the last
finished epoch (`keras.callbacks.BackupAndRestore`), with the data order an uninterrupted run would have seen.

    python training/cifar_resnet.py --dataset fashion_mnist --depth 20 --epochs 30 --output-dir runs/cifar_resnet
    python training/cifar_resnet.py --smoke      # seconds: ResNet-8 on the embedded digits
"""

import argparse
import json
import os
import tempfile

import keras

from keras_convnets import CifarResNet, ResNet20, ResNet32, ResNet44, ResNet56, ResNet110, data
from keras_convnets.trainer import recipes

BUILDERS = {20: ResNet20, 32: ResNet32, 44: ResNet44, 56: ResNet56, 110: ResNet110}


def load(name):
    if name != "fashion_mnist":
        return data.load_dataset(name)
    try:
        return data.load_dataset("fashion_mnist")
    except (ValueError, OSError) as error:  # not on this machine: CIFAR-10 instead
        print(f"Fashion-MNIST unavailable ({str(error).splitlines()[0]}); using cifar10")
        return data.load_dataset("cifar10")


def finished_epochs(backup_dir):
    """The epochs a previous run finished, from the record BackupAndRestore keeps beside its weights."""
    path = os.path.join(backup_dir, "training_metadata.json")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return int(json.load(f)["epoch"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist", help="fashion_mnist, cifar10, digits or a folder")
    parser.add_argument("--depth", type=int, default=20, choices=sorted(BUILDERS))
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's 64k iterations")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default=None, help="checkpoints and the model (default: a temporary dir)")
    parser.add_argument("--smoke", action="store_true", help="a tiny run on the embedded digits, in seconds")
    args = parser.parse_args()
    output_dir = args.output_dir or tempfile.mkdtemp(prefix="cifar_resnet-")
    keras.utils.set_random_seed(args.seed)

    recipe = recipes.get_recipe("cifar")
    if args.smoke:  # ResNet-8 (3 stages of one block) at 16x16 on the digits
        dataset, image_size, batch_size = data.load_dataset("digits"), 16, 64
        model = CifarResNet(8, input_shape=(16, 16, 3), classes=dataset.num_classes)
    else:
        dataset, image_size, batch_size = load(args.dataset), 32, args.batch_size
        model = BUILDERS[args.depth](input_shape=(32, 32, 3), classes=dataset.num_classes)
    steps = data.steps_per_epoch_for(dataset.num_train, batch_size)
    epochs = args.epochs or (4 if args.smoke else recipes.default_epochs(recipe, steps, batch_size))

    schedule = recipes.learning_rate_schedule(recipe, batch_size=batch_size, steps_per_epoch=steps, epochs=epochs)
    model.compile(
        optimizer=recipes.make_optimizer(recipe, schedule), loss=recipes.make_loss(recipe), metrics=["accuracy"]
    )
    preprocessing = data.compute_preprocessing(
        recipe.preprocessing, dataset, image_size=image_size, augmentation=recipe.augmentation
    )
    backup_dir = os.path.join(output_dir, "backup")
    start = finished_epochs(backup_dir)
    if start:
        print(f"resuming after epoch {start} of {epochs}")
    common = dict(batch_size=batch_size, image_size=image_size, augmentation=recipe.augmentation)
    train = data.train_pipeline(
        dataset, **common, preprocessing=preprocessing, seed=args.seed, epochs=epochs, initial_epoch=start
    )
    test = data.eval_pipeline(dataset, **common, preprocessing=preprocessing)
    model.fit(
        train,
        epochs=epochs,
        steps_per_epoch=steps,
        validation_data=test,
        callbacks=[keras.callbacks.BackupAndRestore(backup_dir)],
        verbose=2,
    )
    loss, accuracy = model.evaluate(test, verbose=0)
    model.save(os.path.join(output_dir, "model.keras"))
    steps_done = int(model.optimizer.iterations)  # a resumed run restores it with the weights
    print(
        f"{model.name} on {dataset.name}: {epochs} epochs ({steps_done} steps), "
        f"test loss {loss:.4f}, test accuracy {accuracy:.4f}"
    )


if __name__ == "__main__":
    main()
