"""Lint runs as part of the suite: ruff over the package, tests and scripts."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_is_clean():
    ruff = shutil.which("ruff")
    cmd = [ruff] if ruff else [sys.executable, "-m", "ruff"]
    try:
        result = subprocess.run(cmd + ["check", "shardkv", "tests"], cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        pytest.fail("ruff is not installed (it is part of the test extras)")
    assert result.returncode == 0, result.stdout + result.stderr
