"""Planning time of `snakemake -n` for result matrices of about 100, 1,000 and 10,000 cells.

Every snakemake call (the real run included) builds the whole DAG before any work: this measures that
cost. Models are copies of the default config's two Whisper models under other names (nothing is
downloaded or run); cells = models x 2 engines x 3 precisions x conditions (white noise at many SNRs).

    python benchmarks/plan_time.py [--sizes 100 1000 10000] [--repeats 3] [--out docs/plan_time.json]

It also plans Snakemake's floor for the largest size: a generated one-rule workflow with as many jobs as
that matrix schedules, each job one `shell:` with no input, params or log, writing 1 file or 4 files (a
cell writes 4: transcripts, cell record, power log, window markers). No workflow can plan faster than this
on the same machine and Snakemake.

Besides the dry run it times what planning costs a real run: `snakemake --cores 1` from its start to its
first job (then stopped). A dry run costs more: it formats a description of every job as well.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def config_for(cells: int) -> tuple[dict, dict]:
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    n_models = 2 if cells <= 200 else 10
    n_cond = max(1, round(cells / (n_models * 2 * 3)))
    base = cfg["models"]
    cfg["models"] = {f"m{i:02d}-{name}": copy.deepcopy(base[name]) for i in range(n_models // 2) for name in base}
    snrs = [round(-20 + 0.25 * k, 2) for k in range(n_cond - 1)]
    cfg["noise"]["conditions"] = [{"kind": "clean"}] + ([{"kind": "white", "snr_db": snrs}] if snrs else [])
    cfg["matrix"] = {
        "models": list(cfg["models"]),
        "engines": ["faster-whisper", "transformers"],
        "precisions": ["fp32", "fp16", "int8"],
        "conditions": "all",
    }
    cfg["inference"] = {"device": "cpu"}
    cfg["energy"] = {"backend": "none"}
    return cfg, {"models": n_models, "conditions": n_cond, "cells": n_models * 2 * 3 * n_cond}


def plan_once(cfg: dict) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as d:
        cf = Path(d) / "c.yaml"
        cf.write_text(yaml.safe_dump(cfg))
        t0 = time.perf_counter()
        p = subprocess.run(
            [
                "snakemake",
                "-n",
                "--quiet",
                "rules",
                "--cores",
                "1",
                "--snakefile",
                str(ROOT / "Snakefile"),
                "--directory",
                d,
                "--configfile",
                str(cf),
            ],
            capture_output=True,
            text=True,
        )
        dt = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit(p.stdout[-2000:] + p.stderr[-3000:])
        m = re.search(r"^total\s+(\d+)", p.stdout + p.stderr, re.M)
        return dt, int(m.group(1)) if m else -1


def first_job_once(cfg: dict) -> float:
    """Seconds from starting a real run (`snakemake --cores 1`) to its first job: what planning costs a run.

    The run is stopped (its process group) as soon as Snakemake announces that job; it works in a temporary
    folder, so nothing of it is kept. A dry run costs more than this: it also formats every job's description.
    """
    with tempfile.TemporaryDirectory() as d:
        cf = Path(d) / "c.yaml"
        cf.write_text(yaml.safe_dump(cfg))
        cmd = ["snakemake", "--cores", "1", "--snakefile", str(ROOT / "Snakefile"), "--directory", d]
        t0 = time.perf_counter()
        p = subprocess.Popen(
            [*cmd, "--configfile", str(cf)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            for line in p.stdout:
                if line.lstrip().startswith(("rule ", "localrule ")):
                    return time.perf_counter() - t0
            raise SystemExit(f"no job started: snakemake exited with {p.wait()}")
        finally:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


FLOOR_SNAKEFILE = """
rule all:
    input: expand("out/{{i}}/f0", i=range({jobs}))
rule job:
    output: {outputs}
    shell: "touch {{output}}"
"""


def plan_floor(jobs: int, outputs: int) -> float:
    """`snakemake -n` of a one-rule workflow with ``jobs`` jobs of ``outputs`` files each (seconds)."""
    with tempfile.TemporaryDirectory() as d:
        sf = Path(d) / "Snakefile"
        sf.write_text(FLOOR_SNAKEFILE.format(jobs=jobs, outputs=", ".join(f'"out/{{i}}/f{k}"' for k in range(outputs))))
        t0 = time.perf_counter()
        p = subprocess.run(
            ["snakemake", "-n", "--quiet", "rules", "--cores", "1", "--snakefile", str(sf), "--directory", d],
            capture_output=True,
            text=True,
        )
        if p.returncode != 0:
            raise SystemExit(p.stdout[-2000:] + p.stderr[-3000:])
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = []
    for size in args.sizes:
        cfg, shape = config_for(size)
        times, jobs = [], 0
        for _ in range(args.repeats):
            t, jobs = plan_once(cfg)
            times.append(t)
        first = [first_job_once(cfg) for _ in range(args.repeats)]
        row = {
            **shape,
            "jobs": jobs,
            "plan_s_median": round(statistics.median(times), 2),
            "plan_s_min": round(min(times), 2),
            "plan_s_max": round(max(times), 2),
            "first_job_s_median": round(statistics.median(first), 2),
            "first_job_s_min": round(min(first), 2),
            "first_job_s_max": round(max(first), 2),
            "repeats": args.repeats,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    floor = []
    if rows:
        jobs = rows[-1]["jobs"]
        for outputs in (1, 4):
            times = [plan_floor(jobs, outputs) for _ in range(args.repeats)]
            floor.append(
                {"jobs": jobs, "outputs_per_job": outputs, "plan_s_median": round(statistics.median(times), 2)}
            )
            print(json.dumps(floor[-1]), flush=True)
    import snakemake

    out = {
        "rows": rows,
        "snakemake_floor": floor,
        "machine": {
            "cpu": _cpu(),
            "cores": _cores(),
            "python": platform.python_version(),
            "snakemake": snakemake.__version__,
        },
        "command": "snakemake -n --quiet rules --cores 1",
        "first_job_command": "snakemake --cores 1 (stopped when its first job starts)",
    }
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


def _cpu() -> str:
    try:
        return next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


if __name__ == "__main__":
    sys.exit(main())
