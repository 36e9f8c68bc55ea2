"""benchmarks/gq_table.py: merging a run's rows into docs/gq_study.csv and printing the table.

Plumbing only: the rows are the repository's own recorded table, no model runs."""

import importlib.util
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def _gq_table():
    spec = importlib.util.spec_from_file_location("gq_table", ROOT / "benchmarks" / "gq_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_merged_table_prints_rows_without_group_size(tmp_path):
    # after --merge the group size is a nullable integer column: fp32/int8 rows hold pandas' NA, which the
    # table must print as no scales (it raised TypeError before)
    gq = _gq_table()
    recorded = pd.read_csv(ROOT / "docs" / "gq_study.csv")
    old = tmp_path / "old.csv"
    recorded.to_csv(old, index=False)
    new = recorded[recorded["precision"] == "fp32"].head(1).copy()
    new["wer_pct"] = 1.0  # a re-measured row replaces the recorded one
    rows = gq.merge(new, old)
    assert rows["group_size"].dtype == "Int64" and rows["group_size"].isna().any()
    assert len(rows) == len(recorded)
    key = tuple(new.iloc[0][gq.KEY].astype(str))
    kept = rows[[tuple(k) == key for k in rows[gq.KEY].astype(str).values]]
    assert kept["wer_pct"].tolist() == [1.0]
    text = gq.markdown(rows)
    fp32_lines = [ln for ln in text.splitlines() if ln.startswith("| fp32 |")]
    assert fp32_lines and all(ln.split("|")[4].strip() == "" for ln in fp32_lines)  # the scales column
    assert "| per 64 |" in text
