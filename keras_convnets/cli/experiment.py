"""Run one of the papers' experiments and write its report (markdown, PNG figures, JSON/CSV) to a directory.

Experiments: degradation (plain vs residual nets at two depths), bottleneck (MACs, parameters and time of the
bottleneck designs; with a dataset, the `real` and `full` presets, also the test error of a basic and a bottleneck
CIFAR ResNet of equal MACs), lesion (delete blocks of trained nets at test time), aux (GoogLeNet with and without its
auxiliary classifiers). `--preset quick` (or `--quick`) runs a few-minute preset on the embedded digits data;
`--preset real` one on 20,000 Fashion-MNIST photos (about half an hour of 2 CPU cores each); the default, `full`,
follows the paper (CIFAR-10 with the `cifar` recipe: pass `--data-dir` where tensorflow-datasets keeps it).
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    from keras_convnets.experiments import EXPERIMENTS

    parser.add_argument(
        "name",
        choices=list(EXPERIMENTS),
        metavar="NAME",
        help="one of: " + ", ".join(f"{k} ({v[1]})" for k, v in EXPERIMENTS.items()),
    )
    parser.add_argument(
        "--preset",
        choices=("quick", "real", "full"),
        default=None,
        help="quick: minutes on digits; real: about 30 minutes of 2 CPU cores on Fashion-MNIST; "
        "full (default): the paper's",
    )
    parser.add_argument("--quick", action="store_true", help="the same as --preset quick")
    parser.add_argument(
        "--output-dir",
        default=None,
        help="where the report goes (default: experiments/NAME, or experiments/NAME-quick)",
    )
    parser.add_argument(
        "--dataset",
        default=None,
        help="'digits', a directory of class folders or a tensorflow-datasets name (default: the preset's)",
    )
    parser.add_argument("--data-dir", default=None, help="tensorflow-datasets data directory")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="settings",
        help="a preset setting, e.g. --set epochs=3 --set depths=(20,32) (repeatable)",
    )


class _ToStderr(logging.Handler):
    """Writes to whatever `sys.stderr` is when a line comes (not the stream of the first call: pytest's capture
    and notebooks replace it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr, flush=True)
        except Exception:  # a closed stream: the line is a courtesy
            self.handleError(record)


def _show_progress() -> None:
    """The experiments' progress lines (logger `keras_convnets.experiments`, one as each net starts and ends) on
    stderr."""
    logger = logging.getLogger("keras_convnets.experiments")
    if not any(isinstance(handler, _ToStderr) for handler in logger.handlers):
        handler = _ToStderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # a root handler (absl installs one) would print each line a second time


def run(args: argparse.Namespace) -> int:
    from keras_convnets.cli.profile import parse_options
    from keras_convnets.experiments import run_experiment
    from keras_convnets.utils.backend import require_tensorflow_backend

    require_tensorflow_backend("running an experiment")
    settings = parse_options(args.settings, flag="--set")
    _show_progress()
    if args.quick and args.preset not in (None, "quick"):
        raise ValueError(f"`--quick` is `--preset quick`. Received: --quick --preset {args.preset}")
    preset = "quick" if args.quick else (args.preset or "full")
    output_dir = args.output_dir or os.path.join("experiments", args.name + ("" if preset == "full" else f"-{preset}"))
    command = " ".join(
        ["convnets", "experiment", args.name]
        + (["--quick"] if args.quick else [f"--preset {args.preset}"] if args.preset else [])
        + ([f"--output-dir {shlex.quote(args.output_dir)}"] if args.output_dir else [])
        + ([f"--dataset {shlex.quote(args.dataset)}"] if args.dataset else [])
        + ([f"--data-dir {shlex.quote(args.data_dir)}"] if args.data_dir else [])
        + [f"--set {shlex.quote(s)}" for s in args.settings]
    )
    results = run_experiment(
        args.name,
        output_dir,
        preset=preset,
        dataset=args.dataset,
        data_dir=args.data_dir,
        command=command,
        **settings,
    )
    print(f"{args.name}: report written to {os.path.join(output_dir, 'report.md')}")
    findings = results.get("findings") or results.get("accuracy", {}).get("findings")  # bottleneck: its accuracy side
    if findings:
        import json

        print(json.dumps(findings, indent=2, default=str))
    return 0
