"""Markdown table of the sub-8-bit study from a workflow run's cell folders (also a partial run).

    python benchmarks/gq_table.py ../edgeasr-gq-study

Reads results/tables/cells.csv (the workflow's aggregate; with --keep-going also after a partial run) and prints, per
model: WER (clean / the study's uniform-noise set), packed bytes at rest, ratio vs fp32 and int8 for
the quantized layers, and the lowest gq / uniform bit width whose clean WER stays within 0.5 points of fp32.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def main(run_dir: str) -> int:
    import pandas as pd

    table = Path(run_dir, "results", "tables", "cells.csv")
    if not table.exists():
        raise SystemExit(f"{table} does not exist: run the workflow (snakemake results/tables/cells.csv) first")
    df = pd.read_csv(table)
    df = df[(df["engine"] == "transformers") & (df["status"] == "ok")]
    rows = {}
    for c in df.to_dict("records"):
        r = rows.setdefault((c["model"], c["precision"]), {})
        r[c["condition"]] = c.get("wer_pct")
        for key, col in (
            ("packed", "packed_bytes_packed_at_rest"),
            ("ratio_fp32", "packed_ratio_vs_fp32"),
            ("ratio_int8", "packed_ratio_vs_int8"),
            ("param_bytes", "param_bytes"),
        ):
            v = c.get(col)
            r[key] = None if v is None or pd.isna(v) else v

    def order(p):
        m = re.match(r"(gq|uniform)(\d+)$", p)
        return (0, 0, p) if p in ("fp32", "int8") else (1 if m and m[1] == "gq" else 2, -int(m[2]) if m else 0, p)

    for model in sorted({m for m, _ in rows}):
        print(f"\n### {model}\n")
        print(
            "| precision | WER clean (%) | WER study's noisy set (%) | packed checkpoint (MB) "
            "| quantized layers vs fp32 | vs int8 |"
        )
        print("|---|---|---|---|---|---|")
        precs = sorted((p for m, p in rows if m == model), key=order)
        for p in precs:
            r = rows[(model, p)]
            f = lambda v, d=2: "" if v is None else f"{v:.{d}f}"  # noqa: E731
            print(
                f"| {p} | {f(r.get('clean'))} | {f(r.get('paper-uniform'))} | "
                f"{'' if not r.get('packed') else f(r['packed'] / 1e6, 1)} | "
                f"{'' if not r.get('ratio_fp32') else f(r['ratio_fp32'], 1) + 'x'} | "
                f"{'' if not r.get('ratio_int8') else f(r['ratio_int8'], 1) + 'x'} |"
            )
        base = rows.get((model, "fp32"), {}).get("clean")
        for method in ("gq", "uniform"):
            ok = [
                int(p[len(method) :])
                for p in precs
                if re.fullmatch(method + r"\d+", p)
                and rows[(model, p)].get("clean") is not None
                and base is not None
                and rows[(model, p)]["clean"] <= base + 0.5
            ]
            print(
                f"\nLowest {method} bit width within 0.5 points of fp32 on clean audio: "
                f"{min(ok) if ok else 'none measured'}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
