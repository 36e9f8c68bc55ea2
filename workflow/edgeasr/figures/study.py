"""The study's models against this run: which ran, which did not, and why (used by Fig. 4 and Fig. 8).

Fig. 4 and Fig. 8 (:mod:`edgeasr.figures.bars`, :mod:`edgeasr.figures.scatter`) draw every model of the
study (arXiv 2405.01004, twelve models): a model this run lacks is drawn as the study's markers alone, and
named in the figure's note with the reason (``not in this run's matrix``, or the status reasons of its cells
when none of them ran). A model of this run with no cell that ran is left out of the plot and named in the
note too: never silently dropped.

A cell is matched to a model of the study through the cells table's ``paper_model`` column (the config's
``models.<name>.paper_model``, copied by the aggregate step). A table without that column falls back to
the model's name: the study's name itself or a known alias (:func:`guess_paper_model`).
"""

from __future__ import annotations

from collections import Counter

import pandas as pd

# The study's models, in the order of its Fig. 4 (resources/reference/paper_2405.01004_figures.csv).
STUDY_MODELS = (
    "whisper-tiny",
    "whisper-base",
    "whisper-small",
    "whisper-medium",
    "distil-whisper-large-v2",
    "distil-whisper-medium.en",
    "distil-whisper-small.en",
    "hubert-large-ls960-ft",
    "wavlm-libri-clean-100h-base-plus",
    "unispeech-large-1500h-cv-timit",
    "speecht5_asr",
    "wav2vec2-large-960h",
)
NOT_IN_MATRIX = "not in this run's matrix"
REASON_CHARS = 110  # each status reason in a note is cut to this (the full text is in cells.csv)


def guess_paper_model(model: str) -> str:
    """The study's model a model name stands for, or "" (for tables without a ``paper_model`` column).

    Accepted: the study's own name (``-`` and ``_`` alike), a Hugging Face id (``openai/whisper-small``), a
    prefixed name (``openai-whisper-small``, ``Systran/faster-whisper-base``), the distil-whisper ids
    (``distil-whisper/distil-small.en``) and an English-only Whisper (``whisper-tiny.en`` = the study's
    ``whisper-tiny``, as config/config.yaml maps it).
    """
    name = str(model).strip().lower().rsplit("/", 1)[-1].replace("_", "-")
    names = [name]
    if name.startswith("distil-") and not name.startswith("distil-whisper-"):
        names.append("distil-whisper-" + name[len("distil-") :])
    parts = name.split("-")
    names += ["-".join(parts[i:]) for i in range(1, len(parts))]  # a prefixed name: openai-whisper-tiny
    names += [n[: -len(".en")] for n in names if n.endswith(".en")]
    study = {m.replace("_", "-"): m for m in STUDY_MODELS}
    return next((study[n] for n in names if n in study), "")


def study_models(paper: pd.DataFrame, figures=("fig4", "fig8")) -> list[str]:
    """The study's models with a value in ``figures``, in the reference table's order."""
    rows = paper[paper["figure"].isin(list(figures))]
    return list(dict.fromkeys(rows["paper_model"]))


def cells_reason(rows: pd.DataFrame, limit: int = 2) -> str:
    """The status reasons of cells none of which ran: "failed: <reason>", failures first (what went wrong),
    then the most frequent."""
    texts = [
        f"{s}: {' '.join(str(r).split())}" if str(r).strip() else str(s)
        for s, r in zip(rows["status"], rows["status_reason"])
    ]
    if not texts:
        return NOT_IN_MATRIX
    order = {t: i for i, t in reversed(list(enumerate(texts)))}
    ranked = sorted(Counter(texts).items(), key=lambda kv: (not kv[0].startswith("failed"), -kv[1], order[kv[0]]))
    shown = [t if len(t) <= REASON_CHARS else t[: REASON_CHARS - 1].rstrip() + "…" for t, _ in ranked[:limit]]
    return " / ".join(shown) + (f" (+{len(ranked) - limit} more)" if len(ranked) > limit else "")


def study_status(cells: pd.DataFrame, models: list[str]) -> pd.DataFrame:
    """One row per model of the study: ``ran`` (a cell of it has status ok), the run's models mapped to it,
    and, when it did not run, why."""
    rows = []
    for pm in models:
        mine = cells[cells["paper_model"] == pm]
        ran = bool((mine["status"] == "ok").any())
        rows.append(
            {
                "paper_model": pm,
                "run_models": ", ".join(dict.fromkeys(mine["model"])),
                "ran": ran,
                "reason": "" if ran else cells_reason(mine),
            }
        )
    return pd.DataFrame(rows, columns=["paper_model", "run_models", "ran", "reason"])


def ran_models(cells: pd.DataFrame) -> set[str]:
    """Models of this run with at least one cell that ran."""
    return set(cells.loc[cells["status"] == "ok", "model"])


def ran_pairs(cells: pd.DataFrame) -> set[tuple[str, str]]:
    """(model, engine) pairs with at least one cell that ran."""
    ok = cells[cells["status"] == "ok"]
    return set(zip(ok["model"], ok["engine"]))


def _by_reason(items) -> str:
    """[(name, reason)] -> "a, b (reason 1); c (reason 2)" (groups in first-seen order)."""
    groups: dict = {}
    for name, reason in items:
        groups.setdefault(reason, []).append(name)
    return "; ".join(f"{', '.join(names)} ({reason})" for reason, names in groups.items())


def not_run_notes(cells: pd.DataFrame, models: list[str], markers: bool = True, by_engine: bool = False) -> list[str]:
    """Figure notes naming (1) every model of the study that did not run here, with the reason, and (2) every
    model of this run with no cell that ran (with ``by_engine``, also each model left out of an engine none of
    whose cells ran, though it ran on another), with the reason."""
    notes = []
    status = study_status(cells, models)
    missing = status[~status["ran"]]
    if len(missing):
        items = [
            (r.paper_model + (f" [{r.run_models}]" if r.run_models not in ("", r.paper_model) else ""), r.reason)
            for r in missing.itertuples()
        ]
        notes.append(
            "Models of the study that did not run here"
            + (" (drawn as the study's markers alone)" if markers else "")
            + ": "
            + _by_reason(items)
            + "."
        )
    covered = set(missing["paper_model"])
    ran, pairs = ran_models(cells), ran_pairs(cells)
    items = []
    for model, grp in cells.groupby("model", sort=False):
        if model not in ran and grp["paper_model"].iloc[0] not in covered:
            items.append((model, cells_reason(grp)))
        elif model in ran and by_engine:
            items += [
                (f"{model} · {engine}", cells_reason(sub))
                for engine, sub in grp.groupby("engine")
                if (model, engine) not in pairs
            ]
    if items:
        notes.append("Not drawn, no cell ran: " + _by_reason(items) + ".")
    return notes
