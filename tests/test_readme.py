"""The README's code must run as written: execute its Python blocks in order in one namespace."""
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_a_quick_start():
    assert len(python_blocks()) >= 2


def test_readme_python_blocks_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for block in python_blocks():
        exec(compile(block, str(README), "exec"), namespace)
    out = capsys.readouterr().out
    accuracy = float(re.search(r"test accuracy: ([0-9.]+)", out).group(1))
    assert accuracy >= 0.9, out
    assert (tmp_path / "digits.fcz").exists()


def test_readme_test_command_is_what_ci_runs():
    text = README.read_text()
    marker = text.index("<!-- ci-test-command -->")
    command = text[marker:].split("```bash\n", 1)[1].split("\n", 1)[0]
    ci = (README.parent / ".ci" / "run").read_text()
    assert "ci-test-command" in ci and command.startswith("python -m pytest")
