"""Every script in examples/ runs in its --quick mode and prints what it claims to show."""
import os
import re
import subprocess
import sys

from _datafile_writers import learnable_mnist, write_mnist

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(REPO_ROOT, "examples")


def run_example(name, *args, cwd):
    env = dict(os.environ)
    # Run against this checkout even when fastconv is not installed.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO_ROOT, env.get("PYTHONPATH")]))
    # The quick runs train tiny models, where OpenMP's thread start-up costs more than it
    # gains and a loaded machine makes it erratic: one thread keeps the test time predictable.
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([sys.executable, os.path.join(EXAMPLES, name), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def percent(pattern, text):
    match = re.search(pattern + r"\s*([0-9.]+)%", text)
    assert match, f"{pattern!r} not found in:\n{text}"
    return float(match.group(1))


def test_every_example_is_listed_in_the_readme_and_has_a_quick_test():
    # _common.py is the scripts' shared helper module, not an example.
    scripts = sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py") and not f.startswith("_"))
    with open(os.path.join(EXAMPLES, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    for script in scripts:
        assert f"python examples/{script} --quick" in readme, script
    tested = {"image_kernels.py", "pooling_demo.py", "lenet5_mnist.py", "alexnet_cifar10.py",
              "early_stopping.py", "transfer_learning.py", "grid_search.py"}
    assert set(scripts) == tested


def test_image_kernels(tmp_path):
    done = run_example("image_kernels.py", "--quick", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    rows = [line for line in out.splitlines()
            if line.split("  ")[0].strip() in ("identity", "sharpen", "outline", "box blur",
                                               "gaussian blur", "emboss", "sobel (bottom)")]
    assert len(rows) == 7
    assert all("out = sum*in" in row and " yes (max error" in row for row in rows), out
    assert "Outline (edges light up)" in out and not list(tmp_path.iterdir())  # no PNG in --quick


def test_image_kernels_on_a_digit(tmp_path):
    done = run_example("image_kernels.py", "--digit", "7", "--no-png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "bundled digit 7, enlarged 4x" in done.stdout and " NO " not in done.stdout


def test_pooling_demo(tmp_path):
    done = run_example("pooling_demo.py", "--quick", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    # The textbook 4x4 example: 2x2 windows of [[1,1,2,4],[5,6,7,8],[3,2,1,0],[1,2,3,4]].
    assert "6.00   8.00" in out and "3.00   4.00" in out        # max of each window
    assert "3.25   5.25" in out and "2.00   2.00" in out        # mean of each window
    assert out.count("matches the direct NumPy computation: yes") == 4
    assert "global max pooling: 15.00   global average pooling: 7.50" in out


def test_lenet5_mnist_quick_on_standin_idx_files(tmp_path):
    done = run_example("lenet5_mnist.py", "--quick", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "wrote a stand-in MNIST" in out and "of 28x28 pixels" in out
    assert "Total params: 61,706" in out
    assert percent("Test accuracy:", out) > 50  # 10 classes: chance is 10 %


def test_lenet5_mnist_reads_idx_files_from_data_dir(tmp_path):
    write_mnist(tmp_path / "mnist", learnable_mnist(300, 100, seed=1), gz=True)
    done = run_example("lenet5_mnist.py", "--data-dir", str(tmp_path / "mnist"), "--epochs", "3",
                       "--limit", "300", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Loaded 300 training and 100 test images of 28x28 pixels" in done.stdout
    assert "stand-in" not in done.stdout
    assert percent("Test accuracy:", done.stdout) > 50


def test_lenet5_mnist_usage_and_data_errors(tmp_path):
    done = run_example("lenet5_mnist.py", cwd=tmp_path)
    assert done.returncode == 2 and "--data-dir is required" in done.stderr
    done = run_example("lenet5_mnist.py", "--data-dir", str(tmp_path / "missing"), cwd=tmp_path)
    assert done.returncode == 1 and "error: MNIST folder not found" in done.stderr
    assert "Traceback" not in done.stderr
    done = run_example("lenet5_mnist.py", "--quick", "--epochs", "0", cwd=tmp_path)
    assert done.returncode == 2 and "--epochs: expected a positive integer" in done.stderr


def test_alexnet_cifar10_quick_on_synthetic_batches(tmp_path):
    done = run_example("alexnet_cifar10.py", "--quick", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "wrote synthetic CIFAR-10 binary batches" in out
    assert "Loaded 500 training and 100 test images of shape (32, 32, 3)" in out
    assert "conv1 (Conv2D)" in out and "(None, 32, 32, 12)" in out  # small stem, width 0.125
    assert percent("Test accuracy:", out) > 30


def test_early_stopping(tmp_path):
    done = run_example("early_stopping.py", "--quick", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "<- best: these weights are restored" in out
    assert re.search(r"Restored model: val_loss ([0-9.]+), best epoch's \1 -> identical", out), out


def test_transfer_learning(tmp_path):
    done = run_example("transfer_learning.py", "--quick", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "frozen base weights unchanged: yes" in out
    assert percent(r"Source model trained on digits 0-4 .*test accuracy", out) > 90
    assert percent(r"Head trained on 50 images .*test accuracy", out) > 60


def test_grid_search(tmp_path):
    done = run_example("grid_search.py", "--quick", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "12 fits (3-fold cross-validation)" in out
    # A learning rate of 1e-4 cannot learn the digits in 3 epochs; 1e-2 can.
    assert re.search(r"Best parameters: \{'filters': \d+, 'learning_rate': 0.01\}", out), out
    assert percent("Test accuracy of the refitted best model:", out) > 70
