"""The `python -m fastconv` (or `fastconv`) command line: train, evaluate, info.

    python -m fastconv train                       # small CNN on the bundled digits, offline
    python -m fastconv train --data mnist --data-dir ~/data/mnist --epochs 3
    python -m fastconv evaluate fastconv_model.fcz --data digits
    python -m fastconv info

Exit codes: 0 success, 2 usage error (argparse), 1 data or model-file error (one line on
stderr, no traceback).
"""
import argparse
import os
import sys
import time

import numpy as np

PROG = "fastconv"
DEFAULT_OUTPUT = "fastconv_model.fcz"


class DataError(Exception):
    """A problem with the user's data, files or setup: reported in one line, exit code 1."""


# Per data set: image shape and the training defaults the bundled model reaches its accuracy with.
DATASETS = {
    # The digits set is small (45 steps per epoch): a larger Adam step, decayed by the cosine
    # schedule, gave >= 98.6 % test accuracy on every seed tried (0-11) in 20 epochs.
    "digits": {"input_shape": (8, 8, 1), "epochs": 20, "batch_size": 32,
               "learning_rate": {"adam": 3e-3},
               "about": "bundled UCI hand-written digits (1,797 8x8 images), no file needed"},
    "mnist": {"input_shape": (28, 28, 1), "epochs": 3, "batch_size": 64,
              "about": "MNIST IDX files (train-images-idx3-ubyte, ... optionally .gz) in --data-dir"},
    "cifar10": {"input_shape": (32, 32, 3), "epochs": 5, "batch_size": 64,
                "about": "CIFAR-10 binary or python batches in --data-dir"},
}
DEFAULT_LEARNING_RATE = {"adam": 1e-3, "sgd": 1e-2}
SGD_MOMENTUM = 0.9
COSINE_FLOOR = 0.05  # the cosine schedule ends at this fraction of the initial learning rate


# ---------------------------------------------------------------- argument types

def _argument_type(convert, is_valid, expected):
    """An argparse type: `convert(text)`, kept if `is_valid(value)`.

    Text that does not convert and a value out of range get the same one-line message,
    "expected <expected>, got '<text>'", which argparse prefixes with the option's name.
    """
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not is_valid(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


_positive_int = _argument_type(int, lambda value: value >= 1, "a positive integer")
_non_negative_int = _argument_type(int, lambda value: value >= 0, "a non-negative integer")
# "inf" converts to a float but is no usable learning rate ("nan" already fails `> 0`).
_positive_float = _argument_type(float, lambda value: value > 0 and np.isfinite(value),
                                 "a positive number")
_fraction = _argument_type(float, lambda value: 0.0 <= value < 1.0, "a number in [0, 1)")


# ---------------------------------------------------------------- parser

def _add_data_options(parser, *, for_training):
    parser.add_argument(
        "--data", choices=sorted(DATASETS), default="digits",
        help="data set: " + "; ".join(f"{k}: {v['about']}" for k, v in DATASETS.items())
        + " (default: digits)")
    parser.add_argument(
        "--data-dir", metavar="DIR",
        help="folder holding the mnist or cifar10 files (required for those, unused for digits); "
             "fastconv never downloads data")
    limit_help = ("use only the first N training samples (quick runs)" if for_training
                  else "evaluate only the first N test samples")
    parser.add_argument("--limit", type=_positive_int, metavar="N", help=limit_help)
    parser.add_argument(
        "--seed", type=_non_negative_int, default=0,
        help="random seed: weight initialisation, dropout, shuffling and the digits train/test "
             "split (default: 0)")


def _add_runtime_options(parser):
    parser.add_argument(
        "--backend", choices=["compiled", "reference"],
        help="run the layers on the compiled C/OpenMP kernels or on the NumPy reference "
             "(default: compiled, or reference with a warning if the compiled core is not built)")
    parser.add_argument(
        "--threads", type=_positive_int, metavar="N",
        help="threads for the compiled kernels (default: OpenMP's, OMP_NUM_THREADS respected)")
    parser.add_argument("--quiet", action="store_true",
                        help="print only the final result lines")


def _per_dataset_defaults(key):
    """Help text "(default: digits 20, mnist 3, ...)" for a setting that depends on --data."""
    per_dataset = ", ".join(f"{name} {dataset[key]}" for name, dataset in DATASETS.items())
    return f"(default: {per_dataset})"


def _add_training_options(parser):
    """The options only `train` has."""
    parser.add_argument("--epochs", type=_positive_int, metavar="N",
                        help="training epochs " + _per_dataset_defaults("epochs"))
    parser.add_argument("--batch-size", type=_positive_int, metavar="N",
                        help="mini-batch size " + _per_dataset_defaults("batch_size"))
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam",
                        help=f"optimizer (default: adam; sgd uses momentum {SGD_MOMENTUM})")
    parser.add_argument("--learning-rate", type=_positive_float, metavar="LR",
                        help="initial learning rate (default: adam 0.001, or 0.003 on digits; "
                             "sgd 0.01)")
    parser.add_argument("--lr-schedule", choices=["cosine", "constant"], default="cosine",
                        help="learning rate over the epochs: cosine decays it from --learning-rate "
                             f"to {COSINE_FLOOR:g} x it at the last epoch (stable final weights); "
                             "constant keeps it (default: cosine)")
    parser.add_argument("--validation-split", type=_fraction, default=0.0, metavar="FRACTION",
                        help="fraction of the training data held out for per-epoch validation, "
                             "in [0, 1) (default: 0)")
    parser.add_argument("--output", default=DEFAULT_OUTPUT, metavar="PATH",
                        help=f"where to save the trained model (default: ./{DEFAULT_OUTPUT})")


def _add_evaluation_options(parser):
    """The arguments only `evaluate` has."""
    parser.add_argument("model", metavar="MODEL",
                        help="path of the saved model (.fcz); for --data digits pass the "
                             "--seed it was trained with, so the test split is the held-out one")
    parser.add_argument("--batch-size", type=_positive_int, default=256, metavar="N",
                        help="batch size for inference (default: 256)")


def _add_data_command(commands, name, *, handler, for_training, add_own_options, **texts):
    """Add sub-command `name` with the data options, its own options, then the runtime options.

    `texts` are add_parser's help and description. The sub-parser is kept in the parsed
    arguments so that main() can report a bad --data/--data-dir pair as this command's usage error.
    """
    command = commands.add_parser(name, **texts)
    _add_data_options(command, for_training=for_training)
    add_own_options(command)
    _add_runtime_options(command)
    command.set_defaults(handler=handler, subparser=command)


def build_parser():
    """The argparse parser of `python -m fastconv`."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="fastconv: train and evaluate convolutional networks on the CPU.",
        epilog="Run '%(prog)s COMMAND --help' for the options of a command.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_data_command(
        commands, "train", handler=run_train, for_training=True,
        add_own_options=_add_training_options,
        help="train the default CNN for a data set, report test accuracy, save the model",
        description="Train a small CNN (the default architecture for --data), print per-epoch "
                    "progress and the accuracy on the held-out test set, and save the model. "
                    "With no options: the bundled digits, offline, in seconds.")
    _add_data_command(
        commands, "evaluate", handler=run_evaluate, for_training=False,
        add_own_options=_add_evaluation_options,
        help="evaluate a saved model on a data set's test images",
        description="Load a model saved by 'train' (or model.save) and report its loss and "
                    "accuracy on the test set of --data.")
    info = commands.add_parser(
        "info", help="print versions, backend, threads and the compiled core's build",
        description="Print fastconv's and NumPy's versions, the backend, the threads and what "
                    "the compiled core was built with (compiler, OpenMP, ISA paths).")
    info.set_defaults(handler=run_info)
    return parser


def _check_data_dir(parser, args):
    if args.data == "digits":
        if args.data_dir is not None:
            parser.error("--data-dir is only used with --data mnist or --data cifar10; "
                         "the digits are bundled with fastconv")
    elif args.data_dir is None:
        parser.error(f"--data {args.data} needs --data-dir DIR, the folder holding its files "
                     "(fastconv never downloads data)")


# ---------------------------------------------------------------- data and model

def load_dataset(name, data_dir=None, seed=0):
    """Load a data set as float32 NHWC images in [0, 1] and int64 labels.

    Raises:
        DataError: missing or malformed files (the loaders' message, which names the file).
    """
    from .datasets import cifar10, digits, mnist

    try:
        if name == "digits":
            return digits.load_data(seed=seed)
        loader = mnist if name == "mnist" else cifar10
        (x_train, y_train), (x_test, y_test) = loader.load_data(data_dir)
    except (OSError, ValueError) as exc:
        raise DataError(str(exc)) from None

    def scale(x):
        x = x.astype(np.float32) / np.float32(255)
        return x[..., np.newaxis] if x.ndim == 3 else x  # MNIST: add the channel axis

    return (scale(x_train), y_train.astype(np.int64)), (scale(x_test), y_test.astype(np.int64))


def default_model(name, input_shape):
    """The CNN `train` uses for data set `name` (not compiled)."""
    from .layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten, MaxPooling2D
    from .models import Sequential

    if name == "digits":
        # 8x8 inputs: two 3x3 "same" convolutions, each followed by 2x2 pooling (8 -> 4 -> 2).
        layers = [
            Conv2D(32, 3, padding="same", activation="relu"),
            BatchNormalization(),
            MaxPooling2D(2),
            Conv2D(64, 3, padding="same", activation="relu"),
            MaxPooling2D(2),
            Flatten(),
            Dropout(0.25),
            Dense(10, activation="softmax"),
        ]
    elif name == "mnist":
        # Keras' "simple MNIST convnet" example, with batch normalization after the first block.
        layers = [
            Conv2D(32, 3, activation="relu"),
            BatchNormalization(),
            MaxPooling2D(2),
            Conv2D(64, 3, activation="relu"),
            MaxPooling2D(2),
            Flatten(),
            Dropout(0.5),
            Dense(10, activation="softmax"),
        ]
    else:
        # CIFAR-10: two conv-conv-pool blocks (32 then 64 filters), then a small dense head.
        def block(filters):
            return [
                Conv2D(filters, 3, padding="same", activation="relu"),
                BatchNormalization(),
                Conv2D(filters, 3, padding="same", activation="relu"),
                MaxPooling2D(2),
                Dropout(0.25),
            ]

        layers = block(32) + block(64) + [
            Flatten(),
            Dense(128, activation="relu"),
            Dropout(0.5),
            Dense(10, activation="softmax"),
        ]
    return Sequential(layers, input_shape=input_shape)


def default_learning_rate(dataset, optimizer):
    """The learning rate `train` uses for `optimizer` on `dataset` without --learning-rate."""
    return DATASETS[dataset].get("learning_rate", {}).get(optimizer, DEFAULT_LEARNING_RATE[optimizer])


def make_optimizer(name, learning_rate):
    from . import optimizers

    if name == "sgd":
        return optimizers.SGD(learning_rate=learning_rate, momentum=SGD_MOMENTUM)
    return optimizers.Adam(learning_rate=learning_rate)


def _compiled_core_error():
    """None if the compiled kernels import, else the reason they do not."""
    try:
        from . import ops  # noqa: F401  (imports the extension modules of fastconv._core)
    except ImportError as exc:
        return str(exc)
    return None


def cosine_schedule(initial_rate, epochs):
    """Per-epoch learning rates falling from `initial_rate` to COSINE_FLOOR * it along a cosine.

    Returns a `LearningRateScheduler` schedule `f(epoch, lr)`; epoch is 0-based.
    """
    def schedule(epoch, lr):
        progress = epoch / (epochs - 1) if epochs > 1 else 0.0
        return initial_rate * (COSINE_FLOOR + (1 - COSINE_FLOOR) * 0.5 * (1 + np.cos(np.pi * progress)))

    return schedule


def _configure_runtime(args):
    from . import backend

    if args.backend is None:
        problem = _compiled_core_error()
        args.backend = "compiled" if problem is None else "reference"
        if problem is not None:
            print(f"{PROG}: warning: running on the (much slower) NumPy reference backend: "
                  f"{problem}", file=sys.stderr)
    elif args.backend == "compiled":
        problem = _compiled_core_error()
        if problem is not None:
            raise DataError(f"--backend compiled: the compiled core is not available ({problem}); "
                            "build it, or use --backend reference")
    backend.set_backend(args.backend)
    if args.threads is not None:
        backend.set_num_threads(args.threads)


def _score(model, x, y, batch_size):
    """(loss, accuracy, correct) of `model` on (x, y); accuracy from the predicted classes."""
    results = model.evaluate(x, y, batch_size=batch_size, verbose=0)
    loss = float(np.ravel(results)[0])
    predicted = np.argmax(model.predict(x, batch_size=batch_size, verbose=0), axis=-1)
    correct = int(np.sum(predicted == y))
    return loss, correct / len(y), correct


def _print_score(out, loss, accuracy, correct, total, *, context):
    """The result line of `train` and `evaluate` (tests and scripts read it: keep its format)."""
    print(f"test accuracy: {accuracy:.4f} ({correct}/{total})  test loss: {loss:.4f}  [{context}]",
          file=out)


def _describe(name, x_train, x_test):
    shape = "x".join(str(d) for d in x_train.shape[1:])
    return f"{name}: {len(x_train)} training and {len(x_test)} test images of {shape}"


# ---------------------------------------------------------------- commands

def run_train(args, out):
    from .utils import set_random_seed

    # Check where the model goes before spending time on training.
    output_dir = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(output_dir):
        raise DataError(f"--output {args.output!r}: the folder {output_dir!r} does not exist")
    if os.path.isdir(args.output):
        raise DataError(f"--output {args.output!r} is a folder; give a file path such as "
                        f"{os.path.join(args.output, DEFAULT_OUTPUT)!r}")
    (x_train, y_train), (x_test, y_test) = load_dataset(args.data, args.data_dir, args.seed)
    _configure_runtime(args)
    set_random_seed(args.seed)
    if args.limit is not None:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    defaults = DATASETS[args.data]
    if x_train.shape[1:] != defaults["input_shape"]:
        raise DataError(
            f"--data {args.data}: images are {x_train.shape[1:]}, the default {args.data} model "
            f"expects {defaults['input_shape']}")
    epochs = args.epochs or defaults["epochs"]
    batch_size = args.batch_size or defaults["batch_size"]

    model = default_model(args.data, defaults["input_shape"])
    optimizer = make_optimizer(args.optimizer, args.learning_rate
                               or default_learning_rate(args.data, args.optimizer))
    callbacks = []
    if args.lr_schedule == "cosine":
        from .callbacks import LearningRateScheduler

        callbacks.append(LearningRateScheduler(cosine_schedule(optimizer.learning_rate, epochs)))
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if not args.quiet:
        print(_describe(args.data, x_train, x_test), file=out)
        print(f"training {epochs} epoch(s), batch size {batch_size}, {args.optimizer} "
              f"(learning rate {optimizer.learning_rate:g}, {args.lr_schedule}), "
              f"backend {args.backend}, seed {args.seed}", file=out, flush=True)
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs,
              validation_split=args.validation_split, callbacks=callbacks,
              verbose=0 if args.quiet else 2)
    seconds = time.perf_counter() - start

    loss, accuracy, correct = _score(model, x_test, y_test, batch_size=256)
    _print_score(out, loss, accuracy, correct, len(y_test),
                 context=f"{args.data}, {epochs} epoch(s), {seconds:.1f} s training")
    try:
        written = model.save(args.output) or args.output  # save() may append ".fcz"
    except OSError as exc:
        raise DataError(f"cannot save the model to {args.output!r}: {exc}") from None
    print(f"model saved to {os.path.abspath(written)}", file=out)
    return 0


def run_evaluate(args, out):
    if not os.path.isfile(args.model):
        raise DataError(f"model file not found: {args.model!r}")
    _, (x_test, y_test) = load_dataset(args.data, args.data_dir, args.seed)
    _configure_runtime(args)
    from .models import load_model

    try:
        model = load_model(args.model)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"cannot load the model {args.model!r}: {exc}") from None
    if args.limit is not None:
        x_test, y_test = x_test[: args.limit], y_test[: args.limit]
    try:
        loss, accuracy, correct = _score(model, x_test, y_test, batch_size=args.batch_size)
    except ValueError as exc:  # e.g. the model was trained on another image shape
        raise DataError(f"cannot evaluate {args.model!r} on --data {args.data}: {exc}") from None
    _print_score(out, loss, accuracy, correct, len(y_test), context=f"{args.data}, {args.model}")
    return 0


def run_info(args, out):
    import fastconv

    show_config = getattr(fastconv, "show_config", None)
    if show_config is not None:
        show_config(file=out)
        return 0
    # Fallback for builds without show_config: what the compiled core reports about itself.
    print(f"fastconv : {fastconv.__version__}", file=out)
    print(f"numpy    : {np.__version__}", file=out)
    print(f"backend  : {fastconv.get_backend()}", file=out)
    try:
        from ._core import cpu
    except ImportError as exc:
        print(f"compiled core : NOT AVAILABLE ({exc})", file=out)
        return 0
    print(f"threads  : {fastconv.get_num_threads()}", file=out)
    print(f"isa      : {cpu.isa_name()} (available: {', '.join(cpu.isa_available())})", file=out)
    print(f"openmp   : {cpu.openmp_enabled()}", file=out)
    print(f"compiler : {cpu.compiler_info()}", file=out)
    return 0


def main(argv=None):
    """Entry point of `python -m fastconv` and the `fastconv` script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command in ("train", "evaluate"):
        _check_data_dir(args.subparser, args)
    try:
        return args.handler(args, sys.stdout)
    except DataError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader of our output went away (e.g. `| head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
