"""Time the README's default run (`snakemake --cores 1`) from a fresh clone, and record it.

    python benchmarks/time_default_run.py --json docs/default_run.json

Clones this checkout into a temporary folder (with ../shared linked beside it when present, so the
offline mirror works), runs `snakemake --cores 1` there, and reports the wall time, the job counts per
rule (from Snakemake's benchmark files) and the machine and versions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from edgeasr.provenance import cpu_model, git_commit, versions  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", type=Path)
    ap.add_argument("--cores", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the clone (prints its path)")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="edgeasr-default-run-"))
    shared = ROOT.parent / "shared"
    if shared.exists():
        (tmp / "shared").symlink_to(shared)
    clone = tmp / "main"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    t0 = time.perf_counter()
    p = subprocess.run(["snakemake", "--cores", str(a.cores)], cwd=clone, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        print(p.stdout[-3000:], p.stderr[-3000:], file=sys.stderr)
        return p.returncode
    import pandas as pd

    per_rule: dict[str, dict] = {}
    for f in (clone / "results" / "benchmarks").rglob("*.tsv"):
        rel = f.relative_to(clone / "results" / "benchmarks")
        rule = (
            "infer"
            if f.name == "infer.tsv"
            else "add_noise"
            if rel.parts[0] == "noise"
            else f.stem.split("-")[0] + "_model"
            if rel.parts[0] == "models"
            else f.stem
        )
        s = float(pd.read_csv(f, sep="\t")["s"].iloc[0])
        d = per_rule.setdefault(rule, {"jobs": 0, "s": 0.0})
        d["jobs"] += 1
        d["s"] += s
    cells = pd.read_csv(clone / "results" / "tables" / "cells.csv")
    out = {
        "command": f"snakemake --cores {a.cores}",
        "wall_s": round(wall, 1),
        "git_commit": git_commit(str(ROOT)),
        "cells": cells["status"].value_counts().to_dict(),
        "per_rule": per_rule,
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_after": os.getloadavg(),
        },
        "versions": versions(),
    }
    print(json.dumps(out, indent=2))
    if a.json:
        a.json.write_text(json.dumps(out, indent=2) + "\n")
    if a.keep:
        print(f"clone kept at {clone}")
    else:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
