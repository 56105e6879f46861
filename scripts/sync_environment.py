"""Write environment.yml (conda users) from requirements-lock.txt, so both install the same versions.

    python scripts/sync_environment.py
"""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
pins = [line.strip() for line in (ROOT / "requirements-lock.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")]
lines = [
    "# conda env create -f environment.yml && conda activate ssnn && pip install --no-deps -e .",
    "# Generated from requirements-lock.txt by scripts/sync_environment.py; tests/test_packaging.py checks they agree.",
    "name: ssnn",
    "channels:",
    "  - conda-forge",
    "dependencies:",
    "  - python=3.11",
    "  - pip",
    "  - pip:",
    *[f"      - {p}" for p in pins],
]
(ROOT / "environment.yml").write_text("\n".join(lines) + "\n")
print(f"environment.yml: {len(pins)} pins")
