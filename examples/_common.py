"""What the example scripts share: option types and options, and their data folder.

Not an example itself (hence the underscore). The scripts import it with
`from _common import ...`: Python puts a script's own folder first on sys.path, so this works
from any working directory (`python examples/lenet5_mnist.py ...`).
"""
import argparse
import contextlib
import sys
import tempfile


def positive_int(text):
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = None  # not an integer: the same message as an integer out of range
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_data_dir_options(parser, *, data_dir_help, quick_help):
    """--data-dir, the folder of a data set's files, and --quick, which can run without it."""
    parser.add_argument("--data-dir", help=data_dir_help)
    parser.add_argument("--quick", action="store_true", help=quick_help)


def add_training_options(parser, *, epochs_help):
    """--epochs (no default: the script picks one for --quick), --batch-size, --learning-rate."""
    parser.add_argument("--epochs", type=positive_int, help=epochs_help)
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="Adam's learning rate")


def require_data_dir_unless_quick(parser, args, *, quick_uses):
    """Usage error (exit code 2) when there is neither --data-dir nor --quick.

    Args:
        quick_uses: what --quick runs on without --data-dir, for the message.
    """
    if args.data_dir is None and not args.quick:
        parser.error(f"--data-dir is required (or use --quick for {quick_uses})")


def load_from_data_dir_or_standin(load_data, data_dir, write_standin, standin_name):
    """`load_data(data_dir)`, or without a data_dir, `load_data` of a stand-in data set.

    Args:
        load_data: a `fastconv.datasets.<name>.load_data`, called with the folder.
        data_dir: the user's folder, or None.
        write_standin: `write_standin(folder)` writes the stand-in's files into `folder`, a
            temporary folder deleted after loading.
        standin_name: what `write_standin` writes, for the line that says where it went.

    Returns:
        What `load_data` returns; None when the files are missing or damaged, after printing
        "error: <the loader's message>" to stderr (the script then exits with code 1, without
        a traceback).
    """
    with contextlib.ExitStack() as cleanup:
        folder = data_dir
        if folder is None:
            folder = cleanup.enter_context(tempfile.TemporaryDirectory())
            write_standin(folder)
            print(f"No --data-dir: wrote {standin_name} to {folder}")
        try:
            return load_data(folder)
        except (OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return None
