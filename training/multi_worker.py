"""Train on several machines with tf.distribute.MultiWorkerMirroredStrategy: one process per worker, each told the
cluster and its own place in it by the TF_CONFIG environment variable.

On each machine, set TF_CONFIG and run the same command; worker 0 (the chief) writes the model:

    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}' \\
        python training/multi_worker.py --data fashion_mnist --epochs 30 --output-dir runs/multi_worker

`--local-workers N` launches N workers on this machine (127.0.0.1, free ports) with TF_CONFIG set for each, waits
for them, and checks that every one finished:

    python training/multi_worker.py --smoke --local-workers 2   # seconds: a tiny ResNet on the embedded digits
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def launch(args, output_dir):
    """Run `args.local_workers` copies of this script, worker i with TF_CONFIG's task index i."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(args.local_workers)]}
    command = [sys.executable, os.path.abspath(__file__), "--output-dir", output_dir, "--epochs", str(args.epochs)]
    command += ["--data", args.data] + (["--smoke"] if args.smoke else [])
    workers = []
    for index in range(args.local_workers):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        workers.append(subprocess.Popen(command, env=env))
    try:
        codes = [worker.wait(timeout=args.timeout) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    finished = sum(code == 0 for code in codes)
    print(f"{finished} of {len(workers)} workers finished (exit codes {codes})")
    return 0 if finished == len(workers) else 1


def work(args, output_dir):
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()  # reads TF_CONFIG; before any other TensorFlow op
    import keras

    from keras_convnets import CifarResNet, ResNet20, data
    from keras_convnets.trainer import recipes
    from keras_convnets.trainer.building import prepare_for_multi_worker

    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {"index": 0})
    size = 16 if args.smoke else 32
    dataset = data.load_dataset("digits" if args.smoke else args.data)
    recipe = recipes.get_recipe("cifar")
    batch_size = 32 * strategy.num_replicas_in_sync  # global: 32 per worker
    steps = data.steps_per_epoch_for(dataset.num_train, batch_size)
    keras.utils.set_random_seed(0)  # the same initial weights on every worker
    with strategy.scope():
        shape, classes = (size, size, 3), dataset.num_classes
        model = (
            CifarResNet(8, input_shape=shape, classes=classes)
            if args.smoke
            else ResNet20(input_shape=shape, classes=classes)
        )
        schedule = recipes.learning_rate_schedule(
            recipe, batch_size=batch_size, steps_per_epoch=steps, epochs=args.epochs
        )
        model.compile(
            optimizer=recipes.make_optimizer(recipe, schedule), loss=recipes.make_loss(recipe), metrics=["accuracy"]
        )
    preprocessing = data.compute_preprocessing(recipe.preprocessing, dataset, image_size=size)
    options = tf.data.Options()  # every worker reads its own share of each global batch
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    common = dict(batch_size=batch_size, image_size=size, preprocessing=preprocessing)
    train = data.train_pipeline(dataset, **common, epochs=args.epochs).with_options(options)
    test = data.eval_pipeline(dataset, **common).with_options(options)
    prepare_for_multi_worker(model, strategy, train)  # Keras 3's fit under this strategy: keras-team/keras#20585
    model.fit(train, epochs=args.epochs, steps_per_epoch=steps, verbose=2 if task["index"] == 0 else 0)
    loss, accuracy = model.evaluate(test, verbose=0)
    if task["index"] == 0:  # the chief writes; the others would only overwrite it
        model.save(os.path.join(output_dir, "model.keras"))
    print(f"worker {task['index']} of {strategy.num_replicas_in_sync}: test accuracy {accuracy:.4f}", flush=True)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fashion_mnist", help="a dataset name or a folder of classes")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--local-workers", type=int, default=0, help="launch this many workers here (127.0.0.1)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds the launcher waits for its workers")
    parser.add_argument("--output-dir", default=None, help="the chief's model (default: a temporary dir)")
    parser.add_argument("--smoke", action="store_true", help="a tiny ResNet-8 at 16x16 on the embedded digits")
    args = parser.parse_args()
    output_dir = args.output_dir or tempfile.mkdtemp(prefix="multi_worker-")
    return launch(args, output_dir) if args.local_workers else work(args, output_dir)


if __name__ == "__main__":
    sys.exit(main())
