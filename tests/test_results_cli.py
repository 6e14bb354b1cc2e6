"""Results files (schema, seal, tamper detection), model resolution, and the command line."""
import json
import subprocess
import sys

import pytest

from equibench.cli import main
from equibench.registry import UnknownNameError, resolve_model
from equibench.results import ResultsError, read_results, validate_results
from equibench.runner import RunConfig, run


@pytest.fixture(scope="module")
def results_file(tmp_path_factory):
    from conftest import SHARED_RMD17, REPO

    if not (SHARED_RMD17 / "rmd17_ethanol_train_01.npz").is_file():
        pytest.skip("real rMD17 files not found")
    out = tmp_path_factory.mktemp("run")
    run(RunConfig(task="md17", model=str(REPO / "examples" / "my_model.py"), dataset="rmd17-ethanol",
                  data_dir=str(SHARED_RMD17), steps=3, batch_size=2, out=str(out), progress=False,
                  eval_steps=[0, 3]))
    return next(out.glob("*.json"))


def test_validate_accepts_a_fresh_file(results_file, capsys):
    assert main(["validate", str(results_file)]) == 0
    assert "partial" in capsys.readouterr().out


def test_tampered_number_is_caught(results_file, tmp_path, capsys):
    data = json.loads(results_file.read_text())
    data["final"]["metrics"]["forces_mae"] = 0.01
    bad = tmp_path / "tampered.json"
    bad.write_text(json.dumps(data))
    assert main(["validate", str(bad)]) == 1
    assert "content_hash does not match" in capsys.readouterr().err


def test_malformed_file_names_the_field(results_file):
    data = json.loads(results_file.read_text())
    del data["task"]["split_hash"]
    with pytest.raises(ResultsError, match="at task: 'split_hash' is a required property"):
        validate_results(data)
    data = json.loads(results_file.read_text())
    data["model"]["parameters"] = -1
    with pytest.raises(ResultsError, match="model/parameters"):
        validate_results(data)


def test_stale_task_version_is_refused(results_file, tmp_path):
    from equibench.results import seal

    data = json.loads(results_file.read_text())
    data["task"]["version"] = "0.0"
    with pytest.raises(ResultsError, match="version"):
        validate_results(seal(data))


def test_not_json_and_missing_file(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ResultsError, match="not valid JSON"):
        read_results(tmp_path / "x.json")
    with pytest.raises(ResultsError, match="no such file"):
        read_results(tmp_path / "missing.json")


def test_resolve_model_forms(tmp_path, example_model, monkeypatch):
    assert resolve_model(example_model).name == "my_model"
    (tmp_path / "models_mod.py").write_text("def make(task):\n    return None\n")
    assert resolve_model(f"{tmp_path / 'models_mod.py'}:make").source.endswith(":make")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert resolve_model("models_mod:make").source == "module:models_mod:make"
    with pytest.raises(UnknownNameError, match="no attribute 'mkae'.*Did you mean: make"):
        resolve_model("models_mod:mkae")
    with pytest.raises(UnknownNameError, match="does not exist"):
        resolve_model(str(tmp_path / "nope.py"))


def test_unknown_model_lists_accepted_forms():
    with pytest.raises(UnknownNameError) as info:
        resolve_model("no_such_model")
    text = str(info.value)
    assert "a baseline name" in text and "path/to/my_model.py" in text and "package.module:factory" in text


def test_cli_help_list_and_errors(capsys):
    out = subprocess.run([sys.executable, "-m", "equibench.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "validate" in out.stdout
    assert main(["list"]) == 0
    assert "md17" in capsys.readouterr().out
    assert main(["run", "--model", "no_such_model", "--task", "md17"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown model 'no_such_model'") and "Traceback" not in err
    assert main(["run", "--model", "x.py", "--task", "md71"]) == 2
    assert "Did you mean: md17" in capsys.readouterr().err
