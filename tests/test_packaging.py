"""A plain (non-editable) wheel carries every built-in task, baseline and their data files."""
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _declared_packages() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    return config["packages"], config["package-dir"]


def test_every_task_and_baseline_folder_is_declared():
    packages, package_dir = _declared_packages()
    for install_name, folder in package_dir.items():
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder)
            name = ".".join([install_name, *relative.parts])
            assert name in packages, f"{init.parent} is not listed in pyproject [tool.setuptools] packages"


def test_wheel_contains_packages_and_data(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(REPO)], check=True)
    wheel = next(tmp_path.glob("equibench-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    packages, _ = _declared_packages()
    for package in packages:
        assert f"{package.replace('.', '/')}/__init__.py" in names
    assert "equibench/schema/results-v1.json" in names
    assert "equibench_tasks/md17/card.yaml" in names
    assert any(n.startswith("equibench_tasks/md17/data/") and n.endswith(".npz") for n in names)
