"""`convnets`: one command, one sub-command per job. Each sub-command is a module of `keras_convnets.cli`
with `configure(parser)` and `run(args) -> int` (and, optionally, `interrupted(args) -> str`, the line Ctrl-C
prints), imported only when it is used.

Parsing (`--help`, a bad argument) imports neither TensorFlow nor Keras. TensorFlow's start-up logs are kept out
unless `--verbose` is given or TF_CPP_MIN_LOG_LEVEL is set. An error is one line on stderr,
`convnets COMMAND: error: ...`, with exit status 2 for bad input (ValueError, TypeError, a missing or existing
path) and 1 for the others (OSError, TensorFlow and h5py errors); `--verbose` or CONVNETS_TRACEBACK=1 also prints
the traceback. Ctrl-C is one line and exit status 130.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

__all__ = ["COMMANDS", "build_parser", "main"]

# sub-command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("keras_convnets.cli.models", "list the registered models with parameters and MACs"),
    "profile": ("keras_convnets.cli.profile", "print a model's parameters and MACs per stage or per layer"),
    "experiment": ("keras_convnets.cli.experiment", "run one of the papers' experiments and write its report"),
    "train": (
        "keras_convnets.cli.train",
        "train a model with its paper's recipe (default: ResNet-20 on the embedded digits)",
    ),
    "export": ("keras_convnets.cli.export", "export a run to SavedModel, TFLite and .keras, checked against Keras"),
    "predict": ("keras_convnets.cli.predict", "top-k classes of images from an exported model"),
    "tune": ("keras_convnets.cli.tune", "search bottleneck widths with keras-tuner within a MACs/parameter budget"),
}

TRACEBACK_VARIABLE = "CONVNETS_TRACEBACK"
# errors of bad input: exit status 2 (like argparse's); any other error: 1
USAGE_ERRORS = (ValueError, TypeError, FileNotFoundError, FileExistsError)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show TensorFlow's logs, and the traceback of an error",
    )
    parser = argparse.ArgumentParser(
        prog="convnets", description="The classic convnets of the ResNet and Inception papers.", parents=[common]
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        command_parser = sub.add_parser(command, help=help_text, description=module.__doc__, parents=[common])
        module.configure(command_parser)
        command_parser.set_defaults(_module=module)
    return parser


def _import_tensorflow(show_logs: bool) -> None:
    """Import TensorFlow with its C++ start-up lines (oneDNN, CUDA, absl), written before its log level applies,
    kept out of stderr."""
    if show_logs or "tensorflow" in sys.modules:
        return
    from keras_convnets.utils.logs import quiet_native_logs

    with quiet_native_logs(always=True):
        import tensorflow  # noqa: F401


def _one_line(error: BaseException) -> str:
    """The error as one line: its message (a TensorFlow error's first line), with its type where that says more."""
    text = str(error)
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(error, tf.errors.OpError):
        text = (error.message or "").strip().splitlines()[0] if (error.message or "").strip() else text
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    text = " ".join(lines) or repr(error)
    if type(error) in (ValueError, TypeError):
        return text
    return f"{type(error).__name__}: {text}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    verbose = bool(getattr(args, "verbose", False))  # before or after the sub-command
    show_traceback = verbose or os.environ.get(TRACEBACK_VARIABLE, "") not in ("", "0")
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    module, prefix = args._module, f"convnets {args.command}"
    try:
        _import_tensorflow(verbose or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0")
        import keras_convnets

        keras_convnets._load_all()  # the package's serializable classes, which the runs' model.keras need
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        if show_traceback:
            traceback.print_exc()
        line = "interrupted."
        if hasattr(module, "interrupted"):
            try:
                line = module.interrupted(args)
            except Exception:  # the line is a courtesy: Ctrl-C still stops
                pass
        print(f"{prefix}: {line}", file=sys.stderr)
        return 130
    except Exception as error:
        if show_traceback:
            traceback.print_exc()
        print(f"{prefix}: error: {_one_line(error)}", file=sys.stderr)
        return 2 if isinstance(error, USAGE_ERRORS) else 1


if __name__ == "__main__":
    sys.exit(main())
