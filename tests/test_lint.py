"""The code base stays lint- and format-clean: `snakemake --lint`, `snakefmt --check` on the workflow, and
`ruff check` / `ruff format --check` on the Python (settings in pyproject.toml). CI runs these through
the README's test command; each fails here, naming the findings."""

import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

SMK = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
PY = [str(ROOT / d) for d in ("workflow", "tests", "benchmarks")]


def _run(*cmd):
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def _tool(name):
    exe = shutil.which(name)
    if exe is None:
        pytest.fail(f"{name} is not installed: `pip install -e .[test]` (envs/setup.sh) installs it")
    return exe


def test_snakemake_lint_is_clean():
    p = _run(sys.executable, "-m", "snakemake", "--lint", "--cores", "1")
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]


def test_workflow_is_snakefmt_formatted():
    p = _run(_tool("snakefmt"), "--check", *map(str, SMK))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]


def test_python_is_ruff_clean_and_formatted():
    check = _run(_tool("ruff"), "check", *PY)
    assert check.returncode == 0, check.stdout[-4000:]
    fmt = _run(_tool("ruff"), "format", "--check", *PY)
    assert fmt.returncode == 0, fmt.stdout[-4000:]
