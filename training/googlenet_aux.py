"""Train GoogLeNet with its two auxiliary classifiers (Szegedy et al. 2014, Section 5), then strip them for inference.

`GoogLeNet(aux_logits=True)` is a model with three heads, `{"predictions", "aux1", "aux2"}`, that trains on plain
`(images, labels)`: compiled with one loss, the total is main + 0.3 x (aux1 + aux2), and `accuracy` is the main
head's. The recipe is `recipes.get_recipe("googlenet")` (SGD with momentum 0.9, the BVLC solver's poly schedule,
Inception crops, per-channel mean). After training, `keras_convnets.strip_aux(model)` is the main-output model (the
same layers and weights, without the heads) that is evaluated, saved and exported.

    python training/googlenet_aux.py --data /data/imagenet/train --epochs 60 --output-dir runs/googlenet
    python training/googlenet_aux.py --data fashion_mnist --image-size 96 --variant torchvision --epochs 20
    python training/googlenet_aux.py --smoke      # seconds: the torchvision variant at 32x32 on the embedded digits
"""

import argparse
import os
import tempfile

import keras
import numpy as np

from keras_convnets import GoogLeNet, data, strip_aux
from keras_convnets.trainer import recipes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="imagenet2012", help="a folder of classes, a dataset name (fashion_mnist)")
    parser.add_argument("--data-dir", default=None, help="where tensorflow-datasets keeps its data")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--variant", default="paper", choices=["paper", "torchvision"])
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's 60")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--output-dir", default=None, help="the inference model (default: a temporary dir)")
    parser.add_argument("--smoke", action="store_true", help="a tiny run on the embedded digits, in seconds")
    args = parser.parse_args()
    output_dir = args.output_dir or tempfile.mkdtemp(prefix="googlenet_aux-")
    if args.smoke:
        args.data, args.image_size, args.variant, args.epochs, args.batch_size = "digits", 32, "torchvision", 2, 64

    recipe = recipes.get_recipe("googlenet")
    dataset = data.load_dataset(args.data, data_dir=args.data_dir)
    steps = data.steps_per_epoch_for(dataset.num_train, args.batch_size)
    if args.smoke:
        steps = 4
    epochs = args.epochs or recipe.total_epochs
    keras.utils.set_random_seed(0)
    size = args.image_size
    model = GoogLeNet(
        input_shape=(size, size, 3),
        classes=dataset.num_classes,
        aux_logits=True,
        aux_loss_weight=recipe.aux_loss_weight,
        variant=args.variant,
    )
    schedule = recipes.learning_rate_schedule(recipe, batch_size=args.batch_size, steps_per_epoch=steps, epochs=epochs)
    model.compile(
        optimizer=recipes.make_optimizer(recipe, schedule), loss=recipes.make_loss(recipe), metrics=["accuracy"]
    )
    preprocessing = data.compute_preprocessing(
        recipe.preprocessing, dataset, image_size=size, augmentation=recipe.augmentation
    )
    common = dict(batch_size=args.batch_size, image_size=size, augmentation=recipe.augmentation)
    train = data.train_pipeline(dataset, **common, preprocessing=preprocessing, epochs=epochs, steps_per_epoch=steps)
    test = data.eval_pipeline(dataset, **common, preprocessing=preprocessing)
    history = model.fit(train, epochs=epochs, steps_per_epoch=steps, verbose=2)
    print("loss terms of the last epoch:", {k: round(v[-1], 4) for k, v in history.history.items() if "loss" in k})

    inference = strip_aux(model)  # main head only: the same layers and weights
    inference.compile(loss=recipes.make_loss(recipe), metrics=["accuracy"])
    loss, accuracy = inference.evaluate(test, verbose=0)
    images = next(iter(test))[0][:8]
    difference = np.max(np.abs(inference.predict(images, verbose=0) - model.predict(images, verbose=0)["predictions"]))
    inference.save(os.path.join(output_dir, "googlenet.keras"))
    print(f"parameters: {model.count_params():,} with the aux heads, {inference.count_params():,} without")
    print(f"stripped model agrees with the main head: max difference {difference:.2e}")
    print(f"googlenet on {dataset.name}: {epochs} epochs, test loss {loss:.4f}, test accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
