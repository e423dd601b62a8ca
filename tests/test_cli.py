"""`python -m fastconv`: argument parsing, data errors, and end-to-end training runs."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from _datafile_writers import idx_bytes, learnable_cifar, learnable_mnist, write_cifar_binary, write_mnist
from fastconv.cli import COSINE_FLOOR, build_parser, cosine_schedule, main

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACCURACY_LINE = re.compile(r"^test accuracy: (\d\.\d{4}) \((\d+)/(\d+)\)", re.MULTILINE)
TRAIN_OPTIONS = ["--data", "--data-dir", "--epochs", "--batch-size", "--learning-rate", "--optimizer",
                 "--threads", "--seed", "--validation-split", "--backend", "--limit", "--output",
                 "--quiet", "--lr-schedule"]


def run_cli(*args, cwd=None):
    """Run `python -m fastconv ARGS` in a fresh interpreter that imports this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "fastconv", *args], cwd=cwd or REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=600)


def parse_accuracy(stdout):
    match = ACCURACY_LINE.search(stdout)
    assert match, f"no accuracy line in output:\n{stdout}"
    accuracy, correct, total = float(match.group(1)), int(match.group(2)), int(match.group(3))
    assert abs(accuracy - correct / total) < 1e-4
    return accuracy, correct, total


# ---------------------------------------------------------------- parsing and help

def test_help_lists_commands_and_every_train_option():
    top = run_cli("--help")
    assert top.returncode == 0
    for command in ("train", "evaluate", "info"):
        assert command in top.stdout
    train = run_cli("train", "--help")
    assert train.returncode == 0
    for option in TRAIN_OPTIONS:
        assert option in train.stdout, option
    for choice in ("digits", "mnist", "cifar10", "adam", "sgd", "compiled", "reference"):
        assert choice in train.stdout


def test_every_train_option_has_help_text():
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    for action in train._actions:
        assert action.help, f"{action.option_strings} has no help"


def test_no_command_is_a_usage_error(capsys):
    assert main([]) == 2
    assert "train" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "mnist"], "--data mnist needs --data-dir"),
    (["train", "--data", "cifar10"], "--data cifar10 needs --data-dir"),
    (["train", "--data-dir", "/tmp"], "--data-dir is only used with"),
    (["train", "--data", "imagenet"], "invalid choice"),
    (["train", "--epochs", "0"], "--epochs: expected a positive integer"),
    (["train", "--batch-size", "x"], "--batch-size: expected a positive integer"),
    (["train", "--learning-rate", "-1"], "--learning-rate: expected a positive number"),
    (["train", "--learning-rate", "nan"], "--learning-rate: expected a positive number"),
    (["train", "--validation-split", "1"], r"--validation-split: expected a number in \[0, 1\)"),
    (["train", "--seed", "-3"], "--seed: expected a non-negative integer"),
    (["train", "--threads", "0"], "--threads: expected a positive integer"),
    (["train", "--optimizer", "lbfgs"], "invalid choice"),
    (["train", "--backend", "gpu"], "invalid choice"),
    (["train", "--limit", "0"], "--limit: expected a positive integer"),
    (["evaluate"], "MODEL"),
])
def test_usage_errors_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_usage_error_in_subprocess_has_no_traceback():
    result = run_cli("train", "--data", "mnist")
    assert result.returncode == 2
    assert "needs --data-dir" in result.stderr and "Traceback" not in result.stderr


def test_info_prints_versions():
    result = run_cli("info")
    assert result.returncode == 0, result.stderr
    import fastconv

    assert fastconv.__version__ in result.stdout
    assert np.__version__ in result.stdout
    assert "backend" in result.stdout


def test_cosine_schedule_decays_from_initial_to_floor():
    schedule = cosine_schedule(0.01, epochs=5)
    rates = [schedule(epoch, None) for epoch in range(5)]
    assert rates[0] == pytest.approx(0.01)
    assert rates[-1] == pytest.approx(0.01 * COSINE_FLOOR)
    # Halfway through, a cosine is halfway between its ends.
    assert rates[2] == pytest.approx(0.01 * (1 + COSINE_FLOOR) / 2)
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert cosine_schedule(0.5, epochs=1)(0, None) == pytest.approx(0.5)


# ---------------------------------------------------------------- data errors (exit 1, one line)

def _assert_one_line_error(result, *fragments):
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fastconv train: error:")
    for fragment in fragments:
        assert fragment in lines[0]


def test_nonexistent_data_dir_subprocess(tmp_path):
    missing = str(tmp_path / "no_such_dir")
    result = run_cli("train", "--data", "mnist", "--data-dir", missing)
    _assert_one_line_error(result, "does not exist", missing)


def test_empty_data_dir_lists_expected_files(tmp_path, capsys):
    assert main(["train", "--data", "cifar10", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "data_batch_1.bin" in err and "test_batch" in err and str(tmp_path) in err
    assert main(["train", "--data", "mnist", "--data-dir", str(tmp_path)]) == 1
    assert "train-images-idx3-ubyte" in capsys.readouterr().err


def test_malformed_mnist_file_names_it(tmp_path):
    (train, test) = learnable_mnist(20, 10)
    files = write_mnist(tmp_path, (train, test))
    with open(files["train_images"], "wb") as f:
        f.write(idx_bytes(train[0], magic=0x00000801))
    result = run_cli("train", "--data", "mnist", "--data-dir", str(tmp_path))
    _assert_one_line_error(result, "train-images-idx3-ubyte", "magic")


def test_wrong_image_size_for_default_model(tmp_path, capsys):
    (train, test) = learnable_mnist(20, 10)
    small = ((train[0][:, :20, :20].copy(), train[1]), (test[0][:, :20, :20].copy(), test[1]))
    write_mnist(tmp_path, small)
    assert main(["train", "--data", "mnist", "--data-dir", str(tmp_path)]) == 1
    assert "(28, 28, 1)" in capsys.readouterr().err


def test_evaluate_missing_model(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "none.fcz")]) == 1
    assert "model file not found" in capsys.readouterr().err


def test_evaluate_unreadable_model(tmp_path, capsys):
    garbage = tmp_path / "garbage.fcz"
    garbage.write_bytes(b"not a zip archive")
    assert main(["evaluate", str(garbage)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fastconv evaluate: error: cannot load the model") and len(err.splitlines()) == 1


@pytest.mark.parametrize("make_output", [
    lambda tmp: tmp / "no_such_folder" / "model.fcz",
    lambda tmp: tmp,
])
def test_bad_output_path_fails_before_training(tmp_path, capsys, make_output):
    output = str(make_output(tmp_path))
    assert main(["train", "--output", output]) == 1
    captured = capsys.readouterr()
    assert "--output" in captured.err and "test accuracy" not in captured.out


# ---------------------------------------------------------------- training runs

def _load_model(path):
    from fastconv.models import load_model

    return load_model(str(path))


def test_train_mnist_idx_then_evaluate(tmp_path, capsys):
    data_dir, model_path = tmp_path / "mnist", tmp_path / "mnist.fcz"
    (train, test) = learnable_mnist(200, 60, seed=1)
    write_mnist(data_dir, (train, test), gz=True)
    code = main(["train", "--data", "mnist", "--data-dir", str(data_dir), "--epochs", "2",
                 "--limit", "160", "--batch-size", "32", "--output", str(model_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "160 training and 60 test images of 28x28x1" in out
    accuracy, _, total = parse_accuracy(out)
    assert total == 60
    # The classes are trivially separable (each lights its own block): far above chance.
    assert accuracy >= 0.5
    model = _load_model(model_path)
    x_test = test[0].astype(np.float32)[..., None] / 255
    probabilities = model.predict(x_test, verbose=0)
    assert probabilities.shape == (60, 10)
    assert np.mean(np.argmax(probabilities, axis=1) == test[1]) == pytest.approx(accuracy, abs=1e-4)
    # `evaluate` on the saved model reports the same test accuracy.
    assert main(["evaluate", str(model_path), "--data", "mnist", "--data-dir", str(data_dir)]) == 0
    assert parse_accuracy(capsys.readouterr().out)[0] == pytest.approx(accuracy, abs=1e-4)
    # ... and refuses, in one line, data of another image shape.
    assert main(["evaluate", str(model_path), "--data", "digits"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fastconv evaluate: error: cannot evaluate") and len(err.splitlines()) == 1


def test_train_cifar10_binary_subprocess(tmp_path):
    data_dir, model_path = tmp_path / "cifar", tmp_path / "cifar.fcz"
    train_batches, test = learnable_cifar(12, 20, seed=2)
    write_cifar_binary(data_dir / "cifar-10-batches-bin", train_batches, test)
    result = run_cli("train", "--data", "cifar10", "--data-dir", str(data_dir), "--epochs", "1",
                     "--batch-size", "20", "--threads", "2", "--output", str(model_path),
                     "--quiet")
    assert result.returncode == 0, result.stderr
    accuracy, _, total = parse_accuracy(result.stdout)
    assert total == 20
    # --quiet: only the accuracy line and where the model went, no per-epoch progress.
    assert len(result.stdout.strip().splitlines()) == 2, result.stdout
    model = _load_model(model_path)
    assert model.predict(test[0][:3].astype(np.float32) / 255, verbose=0).shape == (3, 10)


def test_train_digits_quick_default_output_and_reference_backend(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["train", "--epochs", "2", "--limit", "64", "--backend", "reference", "--seed", "5",
                 "--validation-split", "0.25", "--optimizer", "sgd", "--lr-schedule", "constant"])
    out = capsys.readouterr().out
    assert code == 0
    assert "backend reference" in out and "64 training and 359 test images of 8x8x1" in out
    assert "sgd (learning rate 0.01, constant)" in out
    assert "val_loss" in out  # the per-epoch progress shows the validation split
    parse_accuracy(out)
    assert (tmp_path / "fastconv_model.fcz").is_file()
    assert _load_model(tmp_path / "fastconv_model.fcz").predict(
        np.zeros((2, 8, 8, 1), np.float32), verbose=0).shape == (2, 10)


@pytest.mark.slow
def test_default_digits_run_reaches_97_percent(tmp_path):
    """`python -m fastconv train` with no arguments: >= 97 % on the held-out digits."""
    result = run_cli("train", cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    accuracy, _, total = parse_accuracy(result.stdout)
    assert total == 359
    assert accuracy >= 0.97, result.stdout
    model_path = tmp_path / "fastconv_model.fcz"
    assert model_path.is_file()
    from fastconv.datasets import digits

    _, (x_test, y_test) = digits.load_data()
    predicted = np.argmax(_load_model(model_path).predict(x_test, verbose=0), axis=1)
    assert np.mean(predicted == y_test) == pytest.approx(accuracy, abs=1e-4)
