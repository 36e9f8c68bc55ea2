"""The sub-8-bit study's table, from a workflow run's results/tables/cells.csv (also after a partial run).

    python benchmarks/gq_table.py ../edgeasr-gq-study [--csv docs/gq_study.csv [--merge]] [--from-cells]

Prints, per model, a Markdown table (WER clean / the study's uniform-noise set, packed bytes at rest, ratio
vs fp32 and int8 for the quantized layers) and the lowest bit width within 0.5 WER points of fp32 on clean
audio per method and training mode. With --csv it writes the machine-readable table: one row per (model,
method, training mode, bits or allocation, condition) with WER and its interval, CER, bytes at rest, peak
RSS, RTFx and the decompression mode each row used. With --merge the rows of the existing --csv that this
run did not measure are kept (each with its own git_commit). With --from-cells the table comes from the
cell folders on disk (derived as the workflow's aggregate derives them), for runs of chosen cells.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

CSV_COLUMNS = [
    "model",
    "precision",
    "method",
    "training_mode",
    "training_recipe",
    "bits",
    "group_size",
    "bits_per_weight_effective",
    "condition",
    "wer_pct",
    "wer_ci_low_pct",
    "wer_ci_high_pct",
    "cer_pct",
    "bytes_at_rest",
    "quantized_layers_vs_fp32",
    "quantized_layers_vs_int8",
    "peak_rss_mb",
    "rtfx",
    "decompression",
    "engine",
    "device_name",
    "n_utterances",
    "edgeasr_version",
    "git_commit",
]


def _num(v):
    """None for a missing value (None, NaN, or pandas' NA of a nullable column after --merge), else v."""
    return None if v is None or (pd.api.types.is_scalar(v) and pd.isna(v)) else v


def cells_on_disk(run_dir) -> pd.DataFrame:
    """The cells table of every cell folder a run left (results/cells/...), derived as the workflow's
    aggregate derives it (edgeasr.aggregate.build_tables, default scoring), without its matrix: for runs
    that measured chosen cells only."""
    from edgeasr.aggregate import CellFiles, build_tables
    from edgeasr.config import load_schema

    names = ("cell.json", "transcripts.csv", "power.log", "power_markers.jsonl")
    folders = sorted(p.parent for p in Path(run_dir, "results", "cells").glob("*/*/*/*/cell.json"))
    files = [CellFiles(*(str(f / n) for n in names)) for f in folders if all((f / n).exists() for n in names)]
    if not files:
        raise SystemExit(f"no cell under {Path(run_dir, 'results', 'cells')}")
    defaults = {k: v["default"] for k, v in load_schema()["properties"]["scoring"]["properties"].items()}
    scoring = {  # as results.smk passes config["scoring"] to aggregate
        "samples": defaults["bootstrap_samples"],
        "seed": defaults["bootstrap_seed"],
        "confidence": defaults["confidence"],
    }
    cells, _ = build_tables(files, [], {}, {}, "", scoring=scoring, energy={"rails": None, "interval_ms": None})
    return cells


def study_rows(run_dir, from_cells: bool = False) -> pd.DataFrame:
    table = Path(run_dir, "results", "tables", "cells.csv")
    if from_cells:
        df = cells_on_disk(run_dir)
    elif not table.exists():
        raise SystemExit(f"{table} does not exist: run the workflow (snakemake results/tables/cells.csv) first")
    else:
        df = pd.read_csv(table)
    # every sub-8-bit cell, and fp32 / int8 of every engine beside them
    df = df[
        (df["status"] == "ok")
        & (df["precision_method"].isin(["gq", "uniform"]) | df["precision"].isin(["fp32", "int8"]))
    ]
    rows = []
    for c in df.to_dict("records"):
        packed = _num(c.get("packed_bytes_on_disk"))
        method = c.get("packed_method") if packed else c["precision"]
        rows.append(
            {
                "model": c["model"],
                "precision": c["precision"],
                "method": method,
                "training_mode": (c.get("packed_mode") or "data_free") if packed else "none",
                "training_recipe": _num(c.get("packed_training_recipe")) if packed else None,
                "bits": int(c["weight_bits"]) if _num(c.get("weight_bits")) else c["precision"],
                "group_size": int(_num(c.get("packed_group_size")) or 0) if packed else None,
                "bits_per_weight_effective": _num(c.get("packed_bits_per_weight_effective")) if packed else None,
                "condition": c["condition"],
                "wer_pct": c["wer_pct"],
                "wer_ci_low_pct": c["wer_ci_low_pct"],
                "wer_ci_high_pct": c["wer_ci_high_pct"],
                "cer_pct": c["cer_pct"],
                "bytes_at_rest": packed if packed else _num(c.get("disk_bytes")),
                "quantized_layers_vs_fp32": _num(c.get("packed_ratio_vs_fp32")),
                "quantized_layers_vs_int8": _num(c.get("packed_ratio_vs_int8")),
                "peak_rss_mb": c["peak_rss_mb"],
                "rtfx": c["rtfx"],
                "decompression": (_num(c.get("decompression")) or "dequant-at-load") if packed else "none",
                "engine": c["engine"],
                "device_name": c.get("device_name"),
                "n_utterances": c["n_utterances"],
                "edgeasr_version": c.get("edgeasr_version"),
                "git_commit": c.get("git_commit"),
            }
        )
    return pd.DataFrame(rows, columns=CSV_COLUMNS)


def _order(p: str):
    m = re.match(r"(gq|uniform)(\d+)(.*)$", p)
    if p in ("fp32", "int8") or not m:
        return (0 if p in ("fp32", "int8") else 3, 0, p)
    return (1 if m[1] == "gq" else 2, -int(m[2]), m[3])


def _lowest(gg: pd.DataFrame, base, base_noisy) -> str:
    """The lowest bits within 0.5 WER points of fp32 (transformers) on clean audio, and within that and 2
    points on the study's noisy set: the goal of the sub-8-bit study."""
    if base is None:
        return "no fp32 transformers row to compare with"
    at = {
        c: {int(r.bits): r.wer_pct for r in gg[gg["condition"] == c].itertuples() if isinstance(r.bits, int)}
        for c in ("clean", "paper-uniform")
    }
    clean = sorted(b for b, w in at["clean"].items() if w <= base.wer_pct + 0.5)
    noisy_max = base_noisy.wer_pct + 2 if base_noisy is not None else -1.0
    both = sorted(b for b in clean if at["paper-uniform"].get(b, float("inf")) <= noisy_max)
    measured = sorted(at["clean"])
    return (
        f"within 0.5 points of fp32 on clean audio: {clean[0] if clean else 'none'}; "
        f"and within 2 points on the noisy set too: {both[0] if both else 'none'} (measured: {measured})"
    )


def _training(r) -> str:
    recipe = _num(getattr(r, "training_recipe", None))
    return f"{r.training_mode} ({recipe})" if recipe else r.training_mode


def _scales(group_size) -> str:
    g = _num(group_size)
    return "" if g is None else (f"per {int(g)}" if int(g) else "per row")


def markdown(rows: pd.DataFrame) -> str:
    out = []
    f = lambda v, d=2: "" if _num(v) is None else f"{v:.{d}f}"  # noqa: E731
    for model, g in rows.groupby("model", sort=True):
        out += [
            f"\n### {model}\n",
            "| precision | engine | training | scales | bits/weight | WER clean (%) | WER study's noisy set (%) "
            "| at rest (MB) | quantized layers vs fp32 | vs int8 | decompression | RTFx clean | peak RSS clean (MB) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        by = {(r.precision, r.engine, r.condition): r for r in g.itertuples()}
        keys = sorted({(r.precision, r.engine) for r in g.itertuples()}, key=lambda k: (_order(k[0]), k[1]))
        for p, engine in keys:
            r = next(r for (pp, e, _), r in by.items() if (pp, e) == (p, engine))
            clean, noisy = by.get((p, engine, "clean")), by.get((p, engine, "paper-uniform"))
            out.append(
                f"| {p} | {engine} | {_training(r)} | {_scales(r.group_size)} | "
                f"{f(r.bits_per_weight_effective)} | {f(clean.wer_pct) if clean else ''} | "
                f"{f(noisy.wer_pct) if noisy else ''} | {f((r.bytes_at_rest or 0) / 1e6, 1)} | "
                f"{f(r.quantized_layers_vs_fp32, 1)} | {f(r.quantized_layers_vs_int8, 1)} | "
                f"{r.decompression if r.training_mode != 'none' else ''} | {f(clean.rtfx) if clean else ''} | "
                f"{f(clean.peak_rss_mb, 0) if clean else ''} |"
            )
        base = by.get(("fp32", "transformers", "clean"))
        base_noisy = by.get(("fp32", "transformers", "paper-uniform"))
        quantized = g[g["training_mode"] != "none"]
        keys = ["method", "training_mode", "training_recipe", "group_size"]
        for (method, mode, _, gs), gg in quantized.groupby(keys, dropna=False):
            mode = _training(gg.iloc[0])
            out.append(f"\nLowest {method} ({mode}, {_scales(gs)} scales) bit width: {_lowest(gg, base, base_noisy)}")
    return "\n".join(out)


KEY = ["model", "precision", "engine", "condition"]


def merge(new: pd.DataFrame, old_csv) -> pd.DataFrame:
    """``new`` plus the rows of an earlier table (``old_csv``) that this run did not measure (each row keeps its
    own git_commit and versions: the table can gather runs of several sessions)."""
    old = pd.read_csv(old_csv).reindex(columns=CSV_COLUMNS)
    # as study_rows has them: bits an int where it is a number (else the precision), counts as integers
    old["bits"] = [int(float(b)) if _is_number(b) else b for b in old["bits"]]
    seen = set(map(tuple, new[KEY].astype(str).values))
    kept = old[[tuple(k) not in seen for k in old[KEY].astype(str).values]]
    rows = pd.concat([kept, new], ignore_index=True).sort_values(KEY, kind="stable").reset_index(drop=True)
    for col in ("group_size", "n_utterances", "bytes_at_rest"):
        rows[col] = pd.to_numeric(rows[col], errors="coerce").round().astype("Int64")
    return rows


def _is_number(v) -> bool:
    try:
        return not pd.isna(float(v))
    except (TypeError, ValueError):
        return False


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", nargs="?", default=".")
    ap.add_argument("--csv", help="also write the machine-readable table here")
    ap.add_argument("--merge", action="store_true", help="keep the rows of --csv that this run did not measure")
    ap.add_argument(
        "--from-cells", action="store_true", help="derive the table from the cell folders on disk (no matrix)"
    )
    ap.add_argument("--cells-csv", help="also write the derived cells table here (with --from-cells)")
    args = ap.parse_args(argv)
    rows = study_rows(args.run_dir, args.from_cells)
    if args.cells_csv:
        cells_on_disk(args.run_dir).to_csv(args.cells_csv, index=False)
    if args.merge and args.csv and Path(args.csv).exists():
        rows = merge(rows, args.csv)
    print(markdown(rows))
    if args.csv:
        rows.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
