"""Markdown table of the sub-8-bit study from a workflow run's cell folders (also a partial run).

    python benchmarks/gq_table.py ../edgeasr-gq-study

Reads results/cells/<model>/transformers/<precision>/<condition>/{cell,score}.json and prints, per
model: WER (clean / the study's uniform-noise set), packed bytes at rest, ratio vs fp32 and int8 for
the quantized layers, and the lowest gq / uniform bit width whose clean WER stays within 0.5 points of fp32.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def main(run_dir: str) -> int:
    rows = {}
    for cj in Path(run_dir, "results", "cells").glob("*/transformers/*/*/cell.json"):
        sj = cj.with_name("score.json")
        if not sj.exists():
            continue
        c, s = json.loads(cj.read_text()), json.loads(sj.read_text())
        r = rows.setdefault((c["model"], c["precision"]), {})
        r[c["condition"]] = s.get("wer_pct")
        r["packed"] = c.get("packed_bytes_packed_at_rest")
        r["ratio_fp32"] = c.get("packed_ratio_vs_fp32")
        r["ratio_int8"] = c.get("packed_ratio_vs_int8")
        r["param_bytes"] = c.get("param_bytes")

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
