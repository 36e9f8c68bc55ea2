"""``results/README.md``: a generated summary of one run (matrix, device, backend, totals, findings, links).

Command line: ``python -m edgeasr.report --cells results/tables/cells.csv --findings results/tables/findings.csv
--out results/README.md --figure results/figures/fig4_wer_clean_noisy.png ...`` (figure / table links are
written relative to the README's folder).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

from . import figures as F
from .atomic import write_text

TABLE_DESCRIPTIONS = {
    "tables/cells.csv": "one row per cell (model x engine x precision x condition); schema: docs/results-schema.md",
    "tables/utterances.csv": "one row per (cell, utterance): reference, hypothesis, errors",
    "tables/precision_effect.csv": "relative change of WER, RTF, memory and energy from fp32 (`*_gap` says why empty)",
    "tables/findings.csv": "the study's claims against this run (also `tables/findings.md`)",
    "tables/pareto.csv": "every cell's cost, WER and Pareto-front membership",
}


def _md(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _join(values, empty="—") -> str:
    vals = F.uniq(values)
    return ", ".join(f"`{v}`" for v in vals) if vals else empty


def _num(x, digits=1) -> str:
    return "—" if not F.is_num(x) else f"{x:,.{digits}f}"


def _matrix(cells: pd.DataFrame) -> list[str]:
    lines = ["## Matrix", ""]
    models = []
    for m in F.model_order(cells):
        sub = cells[cells["model"] == m]
        size = sub["model_params_m"].max()
        pm = sub["paper_model"].iloc[0]
        models.append(
            f"`{m}`" + (f" ({size:.0f} M params)" if F.is_num(size) else "") + (f" = study's `{pm}`" if pm else "")
        )
    conds = []
    for cond, grp in cells.groupby("condition", sort=False):
        r = grp.iloc[0]
        detail = r["noise_kind"]
        if F.is_num(r["snr_db"]):
            detail += f", {r['snr_db']:g} dB SNR"
        if F.is_num(r["noise_amplitude"]):
            detail += f", amplitude {r['noise_amplitude']:g}"
        conds.append(f"`{cond}` ({detail})" if detail != cond else f"`{cond}`")
    dims = [
        ("models", models),
        ("engines", [f"`{e}`" for e in sorted(set(cells["engine"]))]),
        ("precisions", [f"`{p}`" for p in F.precision_order(cells["precision"])]),
        ("conditions", conds),
    ]
    lines += ["| dimension | n | values |", "|---|---|---|"]
    for name, vals in dims:
        lines.append(f"| {name} | {len(vals)} | {_md(', '.join(vals)) or '—'} |")
    return lines + [""]


def _device(cells: pd.DataFrame) -> list[str]:
    cells = F.ran_cells(cells)
    lines = ["## Device and software", "", "| | |", "|---|---|"]
    rows = [
        ("device", _join(cells["device"])),
        ("device name", _join(cells["device_name"])),
        ("CPU", _join(cells["cpu_model"])),
        ("GPU", _join(cells["gpu_model"])),
        ("host", _join(cells["host"])),
        ("energy backend", _join(cells["energy_backend"])),
        ("energy rail(s)", _join(cells["energy_rail"])),
        ("compute types", _join(cells["compute_type"])),
        ("edgeasr", _join(cells["edgeasr_version"])),
        ("python", _join(cells["python_version"])),
        ("torch", _join(cells["torch_version"])),
        ("transformers", _join(cells["transformers_version"])),
        ("ctranslate2", _join(cells["ctranslate2_version"])),
        ("faster-whisper", _join(cells["faster_whisper_version"])),
        ("git commit", _join(cells["git_commit"])),
        ("config hash", _join(cells["config_hash"])),
    ]
    finished = F.uniq(cells["finished_utc"])
    rows.append(
        (
            "finished (UTC)",
            f"{finished[0]} … {finished[-1]}" if len(finished) > 1 else (finished[0] if finished else "—"),
        )
    )
    lines += [f"| {k} | {_md(v)} |" for k, v in rows]
    if set(F.uniq(cells["energy_backend"])) <= {"none"}:
        lines += [
            "",
            "No energy was measured (energy backend `none`: no power sensor was available). Energy "
            "figures show the study's values and marked gaps; Fig. 8 and the Pareto front use "
            "transcription time instead.",
        ]
    return lines + [""]


def _totals(cells: pd.DataFrame) -> list[str]:
    counts = cells["status"].value_counts()
    ok = cells[cells["status"] == "ok"]
    clean = ok[ok["noise_kind"] == F.CLEAN]
    lines = [
        "## Totals",
        "",
        "| cells | ok | failed | unsupported | audio transcribed (s) | transcription time (s) | "
        "model load time (s) | test set (s of audio) |",
        "|---|---|---|---|---|---|---|---|",
        f"| {len(cells)} | {counts.get('ok', 0)} | {counts.get('failed', 0)} | {counts.get('unsupported', 0)} | "
        f"{_num(ok['audio_s'].sum())} | {_num(ok['transcribe_s'].sum())} | {_num(ok['load_s'].sum())} | "
        f"{_num(clean['audio_s'].median() if len(clean) else float('nan'))} |",
        "",
        "Audio and transcription time are summed over the cells that ran (transcription time: each cell's "
        "median over repeats, warm-up excluded).",
    ]
    if F.any_energy(cells, "energy_j", None):
        lines[-1] += f" Energy measured: {_num(ok['energy_j'].sum())} J in all (`energy_j`)."
    bad = cells[cells["status"] != "ok"]
    if len(bad):
        lines += ["", "### Cells without a measurement", "", "| status | reason | cells |", "|---|---|---|"]
        for (status, reason), grp in bad.groupby(["status", "status_reason"], sort=False):
            names = [f"{r.model} · {r.engine} · {r.precision} · {r.condition}" for r in grp.itertuples()]
            shown = "; ".join(names[:4]) + (f"; +{len(names) - 4} more" if len(names) > 4 else "")
            lines.append(f"| {status} | {_md(reason) or '—'} | {len(grp)}: {_md(shown)} |")
    return lines + [""]


def results_readme(
    cells: pd.DataFrame, findings: pd.DataFrame | None, figure_paths: list[str], table_paths: list[str] | None = None
) -> str:
    """The README text; ``figure_paths`` / ``table_paths`` are written as given (relative links)."""
    lines = [
        "# Results of this run",
        "",
        "Generated by `python -m edgeasr.report` from `tables/cells.csv` (do not edit: it is rewritten on "
        "every run). Reproduces arXiv 2405.01004 (ASR on a Jetson Orin Nano at fp32/fp16/int8, clean and "
        "noisy LibriSpeech); the study's own values are drawn beside this run's as white diamonds.",
        "",
    ]
    if cells.empty:
        lines += ["**The cells table is empty: nothing ran.**", ""]
    else:
        lines += _matrix(cells) + _device(cells) + _totals(cells)
    if findings is not None and len(findings):
        lines += [
            "## Findings",
            "",
            F.findings_markdown(findings).rstrip(),
            "",
            "How the verdicts are reached: docs/figures.md.",
            "",
        ]
    lines += ["## Figures", ""]
    for path in figure_paths:
        stem = Path(path).stem
        cmd = F.COMMANDS.get(stem)
        lines.append(f"- [{stem}]({path})" + (f": {cmd.description}" if cmd else ""))
    lines += ["", "## Tables", ""]
    for path in table_paths if table_paths is not None else list(TABLE_DESCRIPTIONS):
        key = "tables/" + Path(path).name
        lines.append(
            f"- [{Path(path).name}]({path})" + (f": {TABLE_DESCRIPTIONS[key]}" if key in TABLE_DESCRIPTIONS else "")
        )
    return "\n".join(lines) + "\n"


def write_results_readme(cells_path, findings_path, out, figures=(), tables=None) -> None:
    """Write ``out`` (results/README.md) from the cells table and the findings table (``findings_path``, may be
    None), linking ``figures`` and ``tables`` (paths) relative to the README's folder; ``tables`` None: the
    tables of :data:`TABLE_DESCRIPTIONS` beside it. Raises ValueError / FileNotFoundError on a bad table."""
    cells = F.load_cells(cells_path)
    found = pd.read_csv(findings_path) if findings_path else None
    base = Path(out).parent

    def rel(p):
        return Path(os.path.relpath(p, base)).as_posix()

    links = [rel(p) for p in tables] if tables else [rel(base / t) for t in TABLE_DESCRIPTIONS]
    write_text(out, results_readme(cells, found, [rel(p) for p in figures], links))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgeasr.report", description=__doc__.splitlines()[0])
    parser.add_argument("--cells", required=True)
    parser.add_argument("--findings", default=None, help="results/tables/findings.csv")
    parser.add_argument("--out", required=True, help="results/README.md")
    parser.add_argument("--figure", action="append", default=[], help="a figure to link (repeatable)")
    parser.add_argument("--table", action="append", default=None, help="a table to link (repeatable)")
    args = parser.parse_args(argv)
    try:
        write_results_readme(args.cells, args.findings, args.out, args.figure, args.table)
    except (ValueError, FileNotFoundError) as exc:
        print(f"edgeasr.report: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
