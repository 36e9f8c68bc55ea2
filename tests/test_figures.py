"""Tests of edgeasr.figures / edgeasr.report.

Every table here is SYNTHETIC PLUMBING DATA written by the test itself: made-up numbers shaped like
results/tables/cells.csv (docs/results-schema.md), with known gaps (an unsupported cell, a failed cell,
no energy) so that the figures, the data behind them and the verdicts can be checked. None of these
numbers is a measurement.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from edgeasr import figures as F
from edgeasr import report as R

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "resources" / "reference" / "paper_2405.01004_figures.csv"

# ---------------------------------------------------------------------------------------------------
# synthetic tables (plumbing data, not measurements)
# ---------------------------------------------------------------------------------------------------
MODELS = {  # model: (params M, paper_model, clean WER %, noise sensitivity)
    "whisper-tiny.en": (39.0, "whisper-tiny", 6.0, 30.0),
    "whisper-base": (74.0, "whisper-base", 5.0, 20.0),
    "whisper-small": (244.0, "whisper-small", 3.5, 12.0),
}
PREC = {  # precision: (time factor, memory factor, WER factor, method, bits)
    "fp32": (1.0, 1.0, 1.00, "native", 32),
    "fp16": (0.5, 0.6, 1.00, "native", 16),
    "int8": (0.6, 0.45, 1.04, "dynamic-int8", 8),
    "gq4": (0.9, 0.35, 1.25, "gq", 4),
}


def _conditions(snrs=(0, 10, 20), kinds=("white", "pink")):
    conds = [("clean", "clean", math.nan, math.nan), ("paper_noisy", "uniform", math.nan, 0.1)]
    for kind in kinds:
        for snr in snrs:
            conds.append((f"{kind}_snr{snr}", kind, float(snr), math.nan))
    return conds


def synthetic_cells(
    energy: bool = False,
    models=MODELS,
    precisions=("fp32", "fp16", "int8"),
    engines=("faster-whisper",),
    snrs=(0, 10, 20),
    kinds=("white", "pink"),
    fp16_unsupported: bool = True,
    failed=("whisper-base", "faster-whisper", "int8", "white_snr0"),
    extra=(),
) -> pd.DataFrame:
    """Synthetic plumbing table. Noise adds sensitivity * 10**(-snr/20) pp (uniform: as SNR 6 dB)."""
    rows = []
    for engine in engines:
        for model, (size, paper_model, wer0, sens) in models.items():
            for precision in precisions:
                tf, mf, wf, method, bits = PREC[precision]
                for cond, kind, snr, amp in _conditions(snrs, kinds):
                    eff_snr = 6.0 if kind == "uniform" else snr
                    noise = 0.0 if kind == "clean" else sens * 10 ** (-eff_snr / 20)
                    wer = (wer0 + noise) * wf
                    audio = 328.3
                    t = audio * 0.002 * size**0.8 * tf
                    row = dict(
                        model=model,
                        engine=engine,
                        precision=precision,
                        condition=cond,
                        paper_model=paper_model,
                        model_params_m=size,
                        noise_kind=kind,
                        snr_db=snr,
                        noise_amplitude=amp,
                        status="ok",
                        status_reason="",
                        device="cuda" if energy else "cpu",
                        device_name="Synthetic GPU" if energy else "Synthetic CPU",
                        compute_type=precision,
                        precision_method=method,
                        weight_bits=bits,
                        n_utterances=70,
                        audio_s=audio,
                        load_s=1.5,
                        transcribe_s=t,
                        transcribe_s_min=t * 0.98,
                        transcribe_s_max=t * 1.03,
                        repeats=3,
                        rtf=t / audio,
                        rtfx=audio / t,
                        peak_rss_mb=(300 + 4 * size) * mf,
                        peak_accel_mem_mb=(100 + 2 * size) * mf if energy else math.nan,
                        param_bytes=size * 1e6 * bits / 8,
                        disk_bytes=size * 1e6 * 2,
                        threads=2,
                        batch_size=1,
                        wer_pct=wer,
                        wer_ci_low_pct=wer * 0.85,
                        wer_ci_high_pct=wer * 1.15,
                        cer_pct=wer / 2,
                        ref_words=894,
                        hits=894,
                        substitutions=0,
                        deletions=0,
                        insertions=0,
                        energy_backend="nvml" if energy else "none",
                        energy_rail="gpu" if energy else "",
                        energy_j=t * 20.0 if energy else math.nan,
                        mean_power_w=20.0 if energy else math.nan,
                        idle_power_w=5.0 if energy else math.nan,
                        energy_above_idle_j=t * 15.0 if energy else math.nan,
                        energy_j_per_audio_s=t * 20.0 / audio if energy else math.nan,
                        energy_j_per_utterance=t * 20.0 / 70 if energy else math.nan,
                        paper_style_energy_j=math.nan,
                        window_s=t,
                        edgeasr_version="0.1.0",
                        python_version="3.11.7",
                        torch_version="2.4.0",
                        transformers_version="4.48.0",
                        ctranslate2_version="4.5.0",
                        faster_whisper_version="1.1.0",
                        host="synthetic",
                        cpu_model="Synthetic CPU",
                        gpu_model="Synthetic GPU" if energy else "",
                        git_commit="0000000",
                        config_hash="abc",
                        finished_utc="2025-01-01T00:00:00Z",
                    )
                    if precision == "fp16" and fp16_unsupported and engine == "faster-whisper" and not energy:
                        row = _blank(row, "unsupported", "CT2 float16 needs a GPU (device: cpu)")
                    if failed and (model, engine, precision, cond) == tuple(failed):
                        row = _blank(row, "failed", "OOM: killed (exit 137)")
                    rows.append(row)
    rows.extend(extra)
    return pd.DataFrame(rows)


def _blank(row, status, reason):
    out = dict(row, status=status, status_reason=reason)
    for col in F.NUMERIC_COLUMNS:
        if col not in ("model_params_m", "snr_db", "noise_amplitude", "weight_bits"):
            out[col] = math.nan
    return out


@pytest.fixture(scope="module")
def paper():
    return F.load_paper(PAPER)


@pytest.fixture(scope="module")
def cpu_cells():
    return F.normalise_cells(synthetic_cells(energy=False))


@pytest.fixture(scope="module")
def gpu_cells():
    return F.normalise_cells(synthetic_cells(energy=True, precisions=("fp32", "fp16", "int8", "gq4")))


# ---------------------------------------------------------------------------------------------------
# every figure renders (both tables), files are real PNG / SVG
# ---------------------------------------------------------------------------------------------------
def _check_files(outs):
    png, svg = outs
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 15_000, f"{png} looks empty ({png.stat().st_size} bytes)"
    text = svg.read_text()
    assert "<svg" in text and text.count("<path") > 20
    assert not list(png.parent.glob(".*")), "temp files left behind"


@pytest.mark.parametrize("table", ["cpu", "gpu"])
def test_every_figure_renders(tmp_path, table, cpu_cells, gpu_cells):
    df = cpu_cells if table == "cpu" else gpu_cells
    cells_csv = tmp_path / "cells.csv"
    df.to_csv(cells_csv, index=False)
    for name in F.FIGURE_NAMES:
        outs = [tmp_path / "fig" / f"{name}.png", tmp_path / "fig" / f"{name}.svg"]
        F.run(name, cells_csv, outs, PAPER, {"dpi": 80})
        _check_files(outs)


def test_figure_files_are_reproducible(tmp_path, cpu_cells):
    """The same table gives byte-identical files (no dates, fixed SVG ids), so reruns show no spurious diff."""
    cells_csv = tmp_path / "cells.csv"
    cpu_cells.to_csv(cells_csv, index=False)
    a, b = tmp_path / "a.svg", tmp_path / "b.svg"
    F.run("fig5_energy", cells_csv, [a], PAPER, {})
    F.run("fig5_energy", cells_csv, [b], PAPER, {})
    assert a.read_bytes() == b.read_bytes()


def test_figures_render_degenerate_tables(tmp_path):
    """Empty table, a single clean cell, and a run with only failures: figures still render, never crash."""
    one = synthetic_cells(
        models={"whisper-tiny.en": MODELS["whisper-tiny.en"]}, precisions=("int8",), snrs=(), kinds=(), failed=None
    )
    one = one[one["condition"] == "clean"]
    failed = synthetic_cells(failed=None)
    failed["status"], failed["status_reason"] = "failed", "engine crashed"
    for label, df in (("empty", one.iloc[:0]), ("one", one), ("failed", failed)):
        cells_csv = tmp_path / f"{label}.csv"
        df.to_csv(cells_csv, index=False)
        for name in F.FIGURE_NAMES:
            out = tmp_path / label / f"{name}.png"
            F.run(name, cells_csv, [out], PAPER, {"dpi": 60})
            assert out.stat().st_size > 3000


# ---------------------------------------------------------------------------------------------------
# the data behind the figures
# ---------------------------------------------------------------------------------------------------
def test_fig4_data_gaps_and_paper_layer(cpu_cells, paper):
    d = F.fig4_data(cpu_cells, paper)
    fp16 = d[(d["precision"] == "fp16") & (d["model"] == "whisper-tiny.en")]
    assert set(fp16["which"]) == {"clean", "noisy"}
    assert fp16["value"].isna().all()
    assert all(g.startswith("unsupported: CT2 float16 needs a GPU") for g in fp16["gap"])
    # the study's fp16 values land on the fp16 rows of the mapped model, never on other precisions
    assert fp16.set_index("which")["paper_value"].to_dict() == {"clean": 8.8, "noisy": 40.0}
    assert d.loc[d["precision"] != "fp16", "paper_value"].isna().all()
    ok = d[(d["precision"] == "fp32") & (d["model"] == "whisper-base")].set_index("which")
    assert ok.loc["clean", "value"] == pytest.approx(5.0)
    assert ok.loc["noisy", "condition"] == "paper_noisy"
    assert ok.loc["noisy", "gap"] == ""


def test_fig4_without_uniform_condition(cpu_cells):
    d = F.fig4_data(cpu_cells[cpu_cells["noise_kind"] != "uniform"])
    assert (d.loc[d["which"] == "noisy", "gap"] == "no 'uniform' noise condition in this run").all()


def test_fig5_energy_gaps_never_zero(cpu_cells, gpu_cells, paper):
    d = F.fig5_data(cpu_cells, paper)
    assert d["value"].isna().all()
    ok = d[d["precision"] != "fp16"]
    assert (ok["gap"] == "not measured here (energy backend: none)").all()
    tiny = d[d["paper_model"] == "whisper-tiny"].set_index("precision")["paper_value"]
    assert tiny.to_dict() == {"fp32": 125.0, "fp16": 65.0, "int8": 95.0}
    g = F.fig5_data(gpu_cells, paper)
    assert g["gap"].eq("").all() and (g["value"] > 0).all()


def test_fig7_rtf_with_load(gpu_cells, paper):
    d = F.fig7_data(gpu_cells, paper, rtf_include_load=True)
    row = d[(d["panel"] == "rtf") & (d["model"] == "whisper-base") & (d["precision"] == "fp32")].iloc[0]
    cell = gpu_cells[
        (gpu_cells["model"] == "whisper-base")
        & (gpu_cells["precision"] == "fp32")
        & (gpu_cells["condition"] == "clean")
    ].iloc[0]
    assert row["value"] == pytest.approx((cell["load_s"] + cell["transcribe_s"]) / cell["audio_s"])
    mem = d[(d["panel"] == "memory") & (d["paper_model"] == "whisper-small") & (d["precision"] == "fp32")]
    assert mem["paper_value"].iloc[0] == 4900


# The study's twelve models against a run that has only a few of them (plumbing data).
W2V_REASON = "ModelSourceError: could not download facebook/wav2vec2-large-960h (timeout after 60 s)"
FW_ONLY = "faster-whisper runs Whisper models only, not the ctc family"


def few_models_cells(energy: bool) -> pd.DataFrame:
    """whisper-tiny.en (= the study's whisper-tiny), hubert-large (= hubert-large-ls960-ft) and my-asr (no study
    model) ran; w2v (= wav2vec2-large-960h) failed everywhere; the study's 8 other models are not in the matrix.
    The non-Whisper models are unsupported on faster-whisper, as the workflow records them."""
    models = {
        "whisper-tiny.en": (39.0, "whisper-tiny", 6.0, 30.0),
        "hubert-large": (316.0, "hubert-large-ls960-ft", 2.5, 9.0),
        "my-asr": (50.0, "", 8.0, 20.0),
        "w2v": (317.0, "wav2vec2-large-960h", 4.0, 30.0),
    }
    df = synthetic_cells(
        energy=energy,
        models=models,
        precisions=("fp32", "fp16"),
        engines=("faster-whisper", "transformers"),
        snrs=(),
        kinds=(),
        failed=None,
    )
    rows = []
    for row in df.to_dict("records"):
        if row["engine"] == "faster-whisper" and row["model"] != "whisper-tiny.en":
            row = _blank(row, "unsupported", FW_ONLY)
        elif row["model"] == "w2v":
            row = _blank(row, "failed", W2V_REASON)
        rows.append(row)
    return F.normalise_cells(pd.DataFrame(rows))


def _compact(text: str) -> str:
    """Footnote text with line breaks and spaces removed (wrapping may split a name at a hyphen)."""
    return text.replace("\n", "").replace(" ", "")


def test_reference_has_the_studys_twelve_models(paper):
    from edgeasr.figures.study import STUDY_MODELS

    assert F.study_models(paper) == list(STUDY_MODELS) and len(STUDY_MODELS) == 12
    assert F.study_models(paper, ["fig4"]) == list(STUDY_MODELS)


def test_paper_model_falls_back_to_the_model_name():
    from edgeasr.figures.study import guess_paper_model

    assert guess_paper_model("whisper-tiny.en") == "whisper-tiny"
    assert guess_paper_model("openai/whisper-small") == "whisper-small"
    assert guess_paper_model("Systran/faster-whisper-base") == "whisper-base"
    assert guess_paper_model("distil-whisper/distil-small.en") == "distil-whisper-small.en"
    assert guess_paper_model("distil-whisper-medium.en") == "distil-whisper-medium.en"
    assert guess_paper_model("facebook/hubert-large-ls960-ft") == "hubert-large-ls960-ft"
    assert guess_paper_model("microsoft/speecht5_asr") == guess_paper_model("speecht5-asr") == "speecht5_asr"
    assert guess_paper_model("openai-whisper-medium") == "whisper-medium"
    assert guess_paper_model("wav2vec2-base-960h") == ""  # not the study's wav2vec2-large-960h
    assert guess_paper_model("my-asr") == guess_paper_model("hubert-large") == ""
    # a table without the column is matched by name; a given (even empty) column is kept as it is
    cells = few_models_cells(energy=False)
    guessed = F.normalise_cells(cells.drop(columns="paper_model")).groupby("model")["paper_model"].first()
    assert guessed.to_dict() == {"hubert-large": "", "my-asr": "", "w2v": "", "whisper-tiny.en": "whisper-tiny"}
    assert cells.groupby("model")["paper_model"].first()["hubert-large"] == "hubert-large-ls960-ft"


def test_fig4_draws_every_study_model_and_names_the_missing(tmp_path, paper):
    from edgeasr.figures.study import STUDY_MODELS

    cells = few_models_cells(energy=True)
    d = F.fig4_data(cells, paper)
    # the study's markers: all twelve models, clean and noisy, each exactly once, at the study's value
    marks = d[d["paper_value"].notna()]
    assert sorted(marks.groupby("paper_model")["which"].apply(sorted).items()) == sorted(
        (m, ["clean", "noisy"]) for m in STUDY_MODELS
    )
    assert len(marks) == 24 and set(marks["precision"]) == {"fp16"}
    by = marks.set_index(["paper_model", "which"])["paper_value"]
    assert by["hubert-large-ls960-ft", "clean"] == 2.3 and by["wav2vec2-large-960h", "noisy"] == 39.0
    # a mapped model that ran carries its study marker on its own bar (engine and precision of the study)
    hub = marks[marks["paper_model"] == "hubert-large-ls960-ft"]
    assert set(hub["model"]) == {"hubert-large"} and set(hub["engine"]) == {"transformers"}
    assert not hub["study_only"].any() and hub["value"].notna().all()
    tiny = marks[marks["paper_model"] == "whisper-tiny"]
    assert set(tiny["model"]) == {"whisper-tiny.en"} and set(tiny["engine"]) == {"faster-whisper"}
    # the other ten: the study's markers alone (no bar, no gap), on their own row in the study's panel
    alone = d[d["study_only"]]
    assert set(alone["paper_model"]) == set(STUDY_MODELS) - {"whisper-tiny", "hubert-large-ls960-ft"}
    assert alone["value"].isna().all() and (alone["gap"] == "").all() and (alone["model"] == "").all()
    assert set(alone.loc[alone["paper_model"] == "whisper-medium", "engine"]) == {"faster-whisper"}
    assert set(alone.loc[alone["paper_model"] == "speecht5_asr", "engine"]) == {"transformers"}
    assert "wav2vec2-large-960h (study only)" in set(alone["model_label"])
    # this run's bars: every model that ran, on the engines where it ran; never the failed / unsupported pairs
    bars = d[~d["study_only"]]
    assert set(zip(bars["model"], bars["engine"])) == {
        ("whisper-tiny.en", "faster-whisper"),
        ("whisper-tiny.en", "transformers"),
        ("hubert-large", "transformers"),
        ("my-asr", "transformers"),
    }
    assert bars["value"].notna().all() and len(bars) == 4 * 2 * 2  # pairs x precisions x clean/noisy
    # the notes: each absent study model with its reason, the failed one with its status reason
    notes = F.not_run_notes(cells, F.study_models(paper, ["fig4"]), by_engine=True)
    absent = [m for m in STUDY_MODELS if m not in ("whisper-tiny", "hubert-large-ls960-ft", "wav2vec2-large-960h")]
    assert notes == [
        "Models of the study that did not run here (drawn as the study's markers alone): "
        + ", ".join(absent)
        + " (not in this run's matrix); wav2vec2-large-960h [w2v] (failed: "
        + W2V_REASON
        + " / unsupported: "
        + FW_ONLY
        + ").",
        f"Not drawn, no cell ran: hubert-large · faster-whisper, my-asr · faster-whisper (unsupported: {FW_ONLY}).",
    ]
    # ... and they reach the figure's footnote
    fig = F.plot_fig4(cells, paper)
    foot = _compact(" ".join(t.get_text() for t in fig.texts))
    import matplotlib.pyplot as plt

    plt.close(fig)
    for note in notes:
        assert _compact(note) in foot


def test_fig8_draws_every_study_model_and_names_the_missing(paper):
    from edgeasr.figures.study import STUDY_MODELS

    gpu = few_models_cells(energy=True)
    d, meta = F.fig8_data(gpu, paper=paper)
    assert meta["is_energy"] and meta["precision"] == "fp16"
    study = meta["study"].set_index("paper_model")
    assert sorted(study.index) == sorted(STUDY_MODELS) and study["x"].notna().all()  # Fig. 8: all twelve energies
    assert (
        study.loc["wavlm-libri-clean-100h-base-plus", "x"] == 30
        and study.loc["hubert-large-ls960-ft", "wer_pct"] == 2.3
    )
    assert set(d.loc[d["gap"] == "", "model"]) == {"whisper-tiny.en", "hubert-large", "my-asr"}
    # no energy: the study has a run time (RTF) for its Whisper models only; the rest keep their WER (x NaN)
    cpu = few_models_cells(energy=False)
    _, meta = F.fig8_data(cpu, paper=paper)
    study = meta["study"].set_index("paper_model")
    assert sorted(study.index) == sorted(STUDY_MODELS) and study["wer_pct"].notna().all()
    assert set(study.index[study["x"].notna()]) == {"whisper-tiny", "whisper-base", "whisper-small", "whisper-medium"}
    fig = F.plot_fig8(cpu, paper)
    foot = _compact(" ".join(t.get_text() for t in fig.texts))
    strip = fig.axes[1]  # the study's models without a run time, beside the main axes
    labels = {t.get_text() for t in strip.texts}
    import matplotlib.pyplot as plt

    plt.close(fig)
    assert labels == set(STUDY_MODELS) - set(study.index[study["x"].notna()])
    assert _compact(f"wav2vec2-large-960h [w2v] (failed: {W2V_REASON} / unsupported: {FW_ONLY})") in foot
    assert _compact("speecht5_asr") in foot and _compact("not in this run's matrix") in foot
    assert F.fig8_data(cpu)[1]["study"].empty  # no reference table: no study points


def test_fig8_falls_back_to_time_and_picks_precision(cpu_cells, gpu_cells):
    d, meta = F.fig8_data(cpu_cells)
    assert meta["precision"] == "fp32"  # fp16 never ran on the CPU table: the most-run precision instead
    assert meta["x"] == "transcribe_s" and not meta["is_energy"]
    d, meta = F.fig8_data(gpu_cells)
    assert meta["precision"] == "fp16" and meta["x"] == "energy_j"
    d, meta = F.fig8_data(cpu_cells, precision="fp16")
    assert (d["gap"].str.startswith("unsupported")).all()


def test_snr_data_marks_failed_cell(cpu_cells):
    d = F.snr_data(cpu_cells)
    bad = d[d["gap"] != ""]
    failed = bad[(bad["condition"] == "white_snr0") & bad["gap"].str.startswith("failed")]
    assert failed["series"].tolist() == ["whisper-base · faster-whisper · int8"]
    assert failed["gap"].iloc[0] == "failed: OOM: killed (exit 137)"
    assert "uniform" not in set(d["noise_kind"])


def test_pareto_front_membership():
    x = [1, 2, 3, 4, 2, np.nan]
    y = [10, 5, 6, 1, 5, 0]
    # (3, 6) is dominated by (2, 5); the two (2, 5) points tie and both stay; NaN never counts.
    assert F.pareto_front(x, y).tolist() == [True, True, False, True, True, False]


def test_pareto_data(cpu_cells, gpu_cells):
    d, meta = F.pareto_data(cpu_cells)
    assert meta["x"] == "transcribe_s"
    front = d[d["on_front"]]
    # on the synthetic CPU table int8 is faster than fp32 at slightly higher WER, so every model's int8 is
    # on the front and fp32 only where nothing is both faster and more accurate.
    assert set(front["precision"]) <= {"int8", "fp32"}
    assert "whisper-small" in set(front["model"]) and "whisper-tiny.en" in set(front["model"])
    assert not d.loc[d["gap"] != "", "on_front"].any()
    g, meta = F.pareto_data(gpu_cells)
    assert meta["x"] == "energy_j"
    gf = g[g["on_front"]]
    # fp16 is both cheapest and as accurate as fp32 for each model: no fp32 / gq4 cell on the front
    assert set(gf["precision"]) == {"fp16"}
    by_cond, _ = F.pareto_data(gpu_cells, by_condition=True)
    assert set(by_cond["panel"]) == set(gpu_cells["condition"])


def test_precision_effect_values(gpu_cells, cpu_cells):
    t = F.precision_effect(gpu_cells)
    r = t[
        (t["model"] == "whisper-base")
        & (t["engine"] == "faster-whisper")
        & (t["condition"] == "clean")
        & (t["precision"] == "fp16")
    ].iloc[0]
    assert r["energy_j_rel_change"] == pytest.approx(-0.5)
    assert r["rtf_rel_change"] == pytest.approx(-0.5)
    assert r["peak_rss_mb_rel_change"] == pytest.approx(-0.4)
    assert r["wer_pct_rel_change"] == pytest.approx(0.0)
    gq = t[(t["model"] == "whisper-base") & (t["condition"] == "clean") & (t["precision"] == "gq4")].iloc[0]
    assert gq["wer_pct_rel_change"] == pytest.approx(0.25)
    assert gq["paper_style_energy_j_gap"].startswith("no paper_style_energy_j")
    assert set(t["precision"]) == {"fp16", "int8", "gq4"}
    c = F.precision_effect(cpu_cells)
    fp16 = c[c["precision"] == "fp16"]
    assert fp16["wer_pct_rel_change"].isna().all()
    assert fp16["wer_pct_gap"].str.startswith("unsupported").all()
    i8 = c[(c["precision"] == "int8") & (c["condition"] == "clean")].iloc[0]
    assert i8["energy_j_gap"] == "not measured here (energy backend: none)"
    assert i8["rtf_rel_change"] == pytest.approx(-0.4)
    failed = c[(c["precision"] == "int8") & (c["condition"] == "white_snr0") & (c["model"] == "whisper-base")]
    assert failed["wer_pct_gap"].iloc[0] == "failed: OOM: killed (exit 137)"


def test_precision_effect_missing_baseline():
    df = F.normalise_cells(synthetic_cells(precisions=("fp32", "int8"), snrs=(), kinds=(), failed=None))
    df.loc[(df["precision"] == "fp32") & (df["model"] == "whisper-base"), ["status", "status_reason"]] = [
        "failed",
        "engine crashed",
    ]
    df = df[~((df["precision"] == "fp32") & (df["model"] == "whisper-small"))]
    t = F.precision_effect(df)
    assert t.loc[t["model"] == "whisper-base", "wer_pct_gap"].iloc[0] == "fp32 failed: engine crashed"
    assert t.loc[t["model"] == "whisper-small", "wer_pct_gap"].iloc[0] == "no fp32 cell in this run"


def _verdicts(table):
    return table.set_index("claim_id")["verdict"].to_dict()


def test_findings_cpu_no_energy(cpu_cells, paper):
    f = F.findings(cpu_cells, paper)
    v = _verdicts(f)
    assert v == {
        "fp16_vs_fp32_energy": "not measurable here",
        "size_vs_noise_robustness": "supported",
        "size_vs_energy": "not measurable here",
    }
    row = f.set_index("claim_id")
    assert "unsupported: CT2 float16 needs a GPU" in row.loc["fp16_vs_fp32_energy", "why"]
    assert "energy backend: none" in row.loc["size_vs_energy", "why"]
    assert "proxy, transcription time" in row.loc["size_vs_energy", "measured"]
    assert "0.52" in row.loc["fp16_vs_fp32_energy", "study"]  # the study's 65/125 J, from the reference CSV
    md = F.findings_markdown(f)
    assert md.count("\n") == 5 and "not measurable here" in md


def test_findings_gpu_energy(gpu_cells, paper):
    f = F.findings(gpu_cells, paper)
    assert _verdicts(f) == {
        "fp16_vs_fp32_energy": "supported",
        "size_vs_noise_robustness": "supported",
        "size_vs_energy": "supported",
    }
    row = f.set_index("claim_id").loc["fp16_vs_fp32_energy"]
    assert "median 0.50" in row["measured"] and row["n"] == 3


def test_findings_refuted():
    """Reverse the synthetic relations: fp16 costs 0.8 of fp32, the biggest model degrades most."""
    models = {"a": (39.0, "", 6.0, 10.0), "b": (74.0, "", 5.0, 20.0), "c": (244.0, "", 3.5, 40.0)}
    df = F.normalise_cells(synthetic_cells(energy=True, models=models, precisions=("fp32", "fp16"), failed=None))
    fp16 = df["precision"] == "fp16"
    df.loc[fp16, "energy_j"] = df.loc[fp16, "energy_j"] * 1.6  # 0.5 x 1.6 = 0.8 of fp32
    small_first = df["model"].map({"a": 3.0, "b": 2.0, "c": 1.0})
    df["energy_j"] = df["energy_j"] / df["model_params_m"] ** 0.8 * small_first
    f = F.findings(df)
    assert _verdicts(f) == {
        "fp16_vs_fp32_energy": "refuted",
        "size_vs_noise_robustness": "refuted",
        "size_vs_energy": "refuted",
    }
    assert "saves 20 %" in f.set_index("claim_id").loc["fp16_vs_fp32_energy", "why"]


def test_gap_reason_texts(cpu_cells):
    row = cpu_cells.iloc[0]
    assert F.gap_reason(row, "wer_pct") is None
    assert F.gap_reason(row, "energy_j") == "not measured here (energy backend: none)"
    assert F.gap_reason(row, "peak_accel_mem_mb") == "no accelerator memory (ran on CPU)"
    assert F.gap_reason(None, "wer_pct") == "not in this run's matrix"


# ---------------------------------------------------------------------------------------------------
# options, command line, tables, README
# ---------------------------------------------------------------------------------------------------
def test_options_are_checked():
    opts = F.resolve_options({"dpi": "200", "formats": "png", "show_paper": "false"})
    assert opts["dpi"] == 200 and opts["formats"] == ["png"] and opts["show_paper"] is False
    for bad in (
        {"dpi": 10},
        {"formats": ["gif"]},
        {"pareto_x": "speed"},
        {"nope": 1},
        {"show_paper": "maybe"},
        {"fig4_noisy_amplitude": -1},
    ):
        with pytest.raises(ValueError):
            F.resolve_options(bad)
    assert F.command_options("fig8_wer_energy", {"dpi": 99})["dpi"] == 99
    assert set(F.command_options("wer_vs_snr")) == {"dpi", "snr_ci_style"}


def test_cli_tables_and_errors(tmp_path, cpu_cells, capsys):
    cells_csv = tmp_path / "cells.csv"
    cpu_cells.to_csv(cells_csv, index=False)
    tables = tmp_path / "tables"
    assert F.main(["precision_effect_table", "--cells", str(cells_csv), "--out", str(tables / "pe.csv")]) == 0
    pe = pd.read_csv(tables / "pe.csv")
    assert {"wer_pct_rel_change", "energy_j_gap"} <= set(pe.columns)
    assert (
        F.main(
            [
                "findings",
                "--cells",
                str(cells_csv),
                "--paper",
                str(PAPER),
                "--out",
                str(tables / "findings.csv"),
                str(tables / "findings.md"),
            ]
        )
        == 0
    )
    assert pd.read_csv(tables / "findings.csv")["verdict"].tolist()[0] == "not measurable here"
    assert (tables / "findings.md").read_text().startswith("# Findings")
    assert F.main(["pareto_table", "--cells", str(cells_csv), "--out", str(tables / "pareto.csv")]) == 0
    assert pd.read_csv(tables / "pareto.csv")["on_front"].any()
    assert (
        F.main(
            [
                "wer_vs_snr",
                "--cells",
                str(cells_csv),
                "--out",
                str(tmp_path / "x.png"),
                "--option",
                "snr_ci_style=bars",
                "--option",
                "dpi=60",
            ]
        )
        == 0
    )
    assert (
        F.main(
            [
                "wer_vs_snr",
                "--cells",
                str(cells_csv),
                "--out",
                str(tmp_path / "x.png"),
                "--option",
                "snr_ci_style=zigzag",
            ]
        )
        == 2
    )
    assert "snr_ci_style" in capsys.readouterr().err
    assert F.main(["fig5_energy", "--cells", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "y.png")]) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("model,engine\nx,y\n")
    assert F.main(["fig5_energy", "--cells", str(bad), "--out", str(tmp_path / "y.png")]) == 2
    assert "missing required column" in capsys.readouterr().err
    assert not (tmp_path / "y.png").exists()


def test_results_readme(tmp_path, cpu_cells, paper):
    f = F.findings(cpu_cells, paper)
    text = R.results_readme(cpu_cells, f, ["figures/fig4_wer_clean_noisy.png", "figures/pareto.png"])
    assert "| ok | failed | unsupported |" in text
    n_ok = int((cpu_cells["status"] == "ok").sum())
    assert f"| {n_ok} | 1 | {int((cpu_cells['status'] == 'unsupported').sum())} |" in text
    assert "(figures/fig4_wer_clean_noisy.png)" in text
    assert "energy backend" in text and "none" in text
    assert "not measurable here" in text
    cells_csv, f_csv, out = tmp_path / "cells.csv", tmp_path / "findings.csv", tmp_path / "results" / "README.md"
    cpu_cells.to_csv(cells_csv, index=False)
    f.to_csv(f_csv, index=False)
    assert (
        R.main(
            [
                "--cells",
                str(cells_csv),
                "--findings",
                str(f_csv),
                "--out",
                str(out),
                "--figure",
                str(tmp_path / "results" / "figures" / "pareto.png"),
            ]
        )
        == 0
    )
    assert "(figures/pareto.png)" in out.read_text()


def test_reference_copy_matches_its_source():
    """resources/reference carries the study's values; where the shared copy exists, it is the same."""
    assert PAPER.is_file() and (PAPER.parent / "README.md").is_file()
    shared = ROOT.parent / "shared" / "reference" / PAPER.name
    if shared.is_file():
        assert shared.read_bytes() == PAPER.read_bytes()
    p = F.load_paper(PAPER)
    assert set(p["precision"]) == {"fp16", "fp32", "int8"} and set(p["condition"]) == {"clean", "uniform"}


def test_config_figures_section_matches_the_code():
    """Once config/ carries a `figures:` section, its schema defaults are the code's and config.yaml is valid."""
    import yaml

    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    section = (schema.get("properties") or {}).get("figures")
    if section is None:
        pytest.skip("the config schema has no `figures` section yet")
    assert {k: v.get("default") for k, v in section["properties"].items()} == F.DEFAULT_OPTIONS
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    F.resolve_options(config.get("figures"))


def _figure_helpers(figures_config: dict) -> SimpleNamespace:
    """The names and functions of workflow/rules/figures_common.smk (plain Python, no rules) as Snakemake
    evaluates them, with ``report()`` recorded instead of flagged."""
    ns = {
        "config": {"figures": figures_config},
        "workflow": SimpleNamespace(basedir=str(ROOT)),
        "report": lambda path, **kw: ("report", path, kw),
    }
    path = ROOT / "workflow" / "rules" / "figures_common.smk"
    exec(compile(path.read_text(), str(path), "exec"), ns)
    return SimpleNamespace(**ns)


def test_figure_jobs_hold_only_their_own_options():
    """Each figure / table job's params are its own options (typed), so editing one option reruns only the jobs
    that read it; the outputs, inputs, report categories and FIGURE_TARGETS are those of the workflow."""
    options = {"formats": ["png", "svg"], "dpi": 80, "snr_ci_style": "bars", "show_paper": "false"}
    smk = _figure_helpers(options)
    wc = SimpleNamespace
    for name in F.FIGURE_NAMES:
        own = smk.fig_options(wc(name=name))
        assert own == F.command_options(name, options) and list(own) == list(F.COMMANDS[name].options)
    assert smk.fig_options(wc(name="wer_vs_snr")) == {"dpi": 80, "snr_ci_style": "bars"}
    assert smk.fig_options(wc(name="wer_vs_condition")) == {"dpi": 80}
    assert smk.fig_options(wc(name="fig5_energy")) == {"dpi": 80, "show_paper": False, "energy_metric": "energy_j"}
    # only the figures and tables that draw the study's values read them
    assert set(smk.fig_inputs(wc(name="fig4_wer_clean_noisy"))) == {"cells", "paper"}
    assert smk.fig_inputs(wc(name="wer_vs_snr")) == {"cells": "results/tables/cells.csv"}
    assert Path(smk.fig_inputs(wc(name="pareto"))["paper"]) == PAPER
    first, *rest = smk.fig_outputs()
    assert first == (
        "report",
        "results/figures/{name}.png",
        {"caption": "../report/figure.rst", "category": smk.fig_category},
    )
    assert rest == ["results/figures/{name}.svg"]
    assert smk.fig_category(wc(name="fig8_wer_energy")) == "Figures of the study (rebuilt)"
    assert smk.fig_category(wc(name="pareto")) == "Figures beyond the study"
    # tables and the README
    table = {path: wc(table=path) for path in smk.FIG_TABLE_JOBS}
    assert smk.fig_table_options(table["tables/precision_effect.csv"]) == {}
    assert (
        smk.fig_table_options(table["tables/findings.csv"])
        == smk.fig_table_options(table["tables/findings.md"])
        == {"energy_metric": "energy_j", "fig4_noisy_amplitude": 0.1}
    )
    assert set(smk.fig_table_options(table["tables/pareto.csv"])) == {
        "pareto_x",
        "energy_metric",
        "pareto_by_condition",
    }
    assert smk.fig_table_inputs(table["README.md"]) == {
        "cells": "results/tables/cells.csv",
        "findings": "results/tables/findings.csv",
    }
    assert set(smk.fig_table_inputs(table["tables/findings.md"])) == {"cells", "paper"}
    assert smk.fig_table_options(table["README.md"]) == {
        "figures": [f"results/figures/{n}.png" for n in F.FIGURE_NAMES],
        "tables": [
            "results/tables/cells.csv",
            "results/tables/utterances.csv",
            "results/tables/precision_effect.csv",
            "results/tables/findings.csv",
            "results/tables/findings.md",
            "results/tables/pareto.csv",
        ],
    }
    assert [smk.fig_table_category(t) for t in table.values()] == ["Tables"] * 4 + ["Summary"]
    assert smk.FIGURE_TARGETS == (
        [f"results/figures/{n}.{ext}" for n in F.FIGURE_NAMES for ext in ("png", "svg")]
        + [
            "results/tables/precision_effect.csv",
            "results/tables/findings.csv",
            "results/tables/findings.md",
            "results/tables/pareto.csv",
            "results/README.md",
        ]
    )


def _smk(tmp_path, *args):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--cores",
            "1",
            "-s",
            str(tmp_path / "Snakefile"),
            "-d",
            str(tmp_path),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _job_counts(text: str) -> dict:
    """{rule: jobs} from the job table of ``snakemake -n --quiet rules``."""
    rows = (line.split() for line in text.splitlines())
    return {r[0]: int(r[1]) for r in rows if len(r) == 2 and r[1].isdigit() and r[0] != "total"}


@pytest.mark.skipif(shutil.which("snakemake") is None, reason="snakemake not installed")
def test_snakemake_figure_jobs(tmp_path):
    """figures.smk: one job per figure and per table file, reading only the tables; a job runs through
    workflow/scripts/figure.py and logs under results/logs/figures/; editing one figure's option reruns only it."""
    (tmp_path / "results" / "tables").mkdir(parents=True)
    synthetic_cells().to_csv(tmp_path / "results" / "tables" / "cells.csv", index=False)
    ref = tmp_path / "resources" / "reference"
    ref.mkdir(parents=True)
    shutil.copy(PAPER, ref / PAPER.name)
    config = tmp_path / "fig-config.yaml"
    config.write_text("figures:\n  formats: [png, svg]\n  dpi: 60\n")
    (tmp_path / "Snakefile").write_text(
        f'configfile: "{config}"\n'
        f'include: "{ROOT / "workflow" / "rules" / "figures.smk"}"\n'
        "rule all:\n    input: FIGURE_TARGETS\n"
    )
    assert _job_counts(_smk(tmp_path, "-n", "--quiet", "rules")) == {
        "all": 1,
        "figure": len(F.FIGURE_NAMES),
        "figure_table": 5,
    }
    targets = ["results/figures/wer_vs_snr.png", "results/README.md"]
    _smk(tmp_path, *targets)
    figs, logs = tmp_path / "results" / "figures", tmp_path / "results" / "logs" / "figures"
    assert sorted(p.name for p in figs.iterdir()) == ["wer_vs_snr.png", "wer_vs_snr.svg"]
    assert (logs / "wer_vs_snr.log").is_file() and (logs / "README.md.log").is_file()
    assert (logs / "tables" / "findings.csv.log").is_file()
    readme = (tmp_path / "results" / "README.md").read_text()
    assert "(figures/wer_vs_snr.png)" in readme and "(tables/findings.md)" in readme
    assert pd.read_csv(tmp_path / "results" / "tables" / "findings.csv")["verdict"].iloc[0] == "not measurable here"
    assert _job_counts(_smk(tmp_path, *targets, "-n", "--quiet", "rules")) == {}  # up to date
    config.write_text("figures:\n  formats: [png, svg]\n  dpi: 60\n  snr_ci_style: bars\n  pareto_x: time\n")
    assert _job_counts(_smk(tmp_path, *targets, "-n", "--quiet", "rules")) == {"figure": 1}


def test_wer_vs_condition_order_gaps_and_render(tmp_path):
    """Plumbing data: the condition order (clean, the study's uniform set, then SNR falling) and gaps."""
    from edgeasr.figures import condition_order, run, wer_condition_data

    rows = []
    for cond, kind, snr in (
        ("white_snr0", "white", 0),
        ("clean", "clean", None),
        ("white_snr10", "white", 10),
        ("paper-uniform", "uniform", None),
    ):
        for prec, status in (("fp32", "ok"), ("fp16", "unsupported")):
            rows.append(
                {
                    "model": "m",
                    "engine": "faster-whisper",
                    "precision": prec,
                    "condition": cond,
                    "noise_kind": kind,
                    "snr_db": snr,
                    "status": status,
                    "status_reason": "" if status == "ok" else "needs a GPU",
                    "wer_pct": 5.0 + (snr is None) if status == "ok" else None,
                    "wer_ci_low_pct": 4.0 if status == "ok" else None,
                    "wer_ci_high_pct": 7.0 if status == "ok" else None,
                }
            )
    cells = pd.DataFrame(rows)
    assert condition_order(cells) == ["clean", "paper-uniform", "white_snr10", "white_snr0"]
    d = wer_condition_data(cells)
    assert (d[d.precision == "fp16"]["gap"].str.contains("needs a GPU")).all()
    assert (d[d.precision == "fp32"]["gap"] == "").all()
    path = tmp_path / "cells.csv"
    cells.to_csv(path, index=False)
    run("wer_vs_condition", path, [tmp_path / "w.png", tmp_path / "w.svg"])
    assert (tmp_path / "w.png").stat().st_size > 5000 and (tmp_path / "w.svg").read_text().startswith("<?xml")


def test_wer_vs_bits_draws_the_sub_8_bit_cells_only(gpu_cells, cpu_cells):
    """SYNTHETIC cells: the gq4 rows are the figure's points; fp32/int8 are reference lines, not points."""
    d = F.bits_data(gpu_cells)
    gq = gpu_cells[(gpu_cells["precision"] == "gq4") & (gpu_cells["status"] == "ok")]
    assert len(d) == len(gq) > 0
    assert set(d["precision"]) == {"gq4"} and set(d["bits"]) == {4.0} and set(d["mode"]) == {"data_free"}
    row = d.set_index(["model", "engine", "condition"]).sort_index().iloc[0]
    cell = gq.set_index(["model", "engine", "condition"]).sort_index().iloc[0]
    assert row["wer_pct"] == cell["wer_pct"]
    # a QAT cell is told apart by its packed_mode, a mixed allocation sits at its mean bits
    mixed = gq.iloc[[0]].assign(precision="gq-mixed", weight_bits=float("nan"), packed_mean_bits=4.75)
    mixed = mixed.assign(packed_mode="qat")
    d2 = F.bits_data(pd.concat([gpu_cells, mixed], ignore_index=True))
    extra = d2[d2["precision"] == "gq-mixed"].iloc[0]
    assert extra["bits"] == 4.75 and extra["mode"] == "qat" and extra["method"] == "gq (gq-mixed)"
    # the same checkpoint decompressed another way is the same point, drawn once
    twin = gq.iloc[[0]].assign(precision="gq4-onforward", decompression="on-forward")
    assert len(F.bits_data(pd.concat([gpu_cells, twin], ignore_index=True))) == len(d)
    # the distillation loss and the scale groups make lines of their own
    kd = mixed.assign(precision="gq4-g64-kd", packed_training_recipe="kd, speech s, 300 steps of 4, seed 0")
    kd = kd.assign(packed_group_size=64, weight_bits=4)
    k = F.bits_data(pd.concat([gpu_cells, kd], ignore_index=True)).set_index("precision").loc["gq4-g64-kd"]
    assert k["mode"] == "qat-kd" and k["method"] == "gq g64" and k["bits"] == 4.0
    # the same loss trained two ways at the same bits: two lines named by what differs, not one line with two
    # points at 4 bits
    half = kd.assign(
        precision="gq4-g64-kd-lr-half", packed_training_recipe="kd, speech s, 300 steps of 4, lr 5e-05, seed 0"
    )
    kd = kd.assign(packed_training_recipe="kd, speech s, 300 steps of 4, lr 0.0001, seed 0")
    m = F.bits_data(pd.concat([gpu_cells, kd, half], ignore_index=True)).set_index("precision")["mode"]
    assert m["gq4-g64-kd"] == "qat-kd (lr 0.0001)" and m["gq4-g64-kd-lr-half"] == "qat-kd (lr 5e-05)"
    assert m["gq4"].eq("data_free").all()
    fig = F.plot_wer_vs_bits(pd.concat([gpu_cells, kd, half], ignore_index=True))
    legend = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert sum("qat-kd (lr 0.0001)" in t for t in legend) == sum("qat-kd (lr 5e-05)" in t for t in legend) == 1
    # whole bits as ticks: the mixed allocation's 4.75 is drawn, not labelled over its neighbours
    fig = F.plot_wer_vs_bits(pd.concat([gpu_cells, mixed], ignore_index=True))
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks == ["4", "5"] and 4.75 in set(F.bits_data(pd.concat([gpu_cells, mixed]))["bits"])
    assert F.bits_data(cpu_cells).empty  # no quantizer cell: the figure says so instead of drawing
    fig = F.plot_wer_vs_bits(cpu_cells)
    assert any("no sub-8-bit cell ran" in t.get_text() for ax in fig.axes for t in ax.texts)
