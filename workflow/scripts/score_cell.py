import json

import pandas as pd

from edgeasr.atomic import write_csv, write_json
from edgeasr.scoring import score
from edgeasr.smk import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    cell = json.loads(open(sm.input.cell).read())
    utts = pd.read_csv(sm.input.transcripts, dtype={"utt_id": str}, keep_default_na=False)
    if cell["status"] == "ok":
        metrics, scored = score(
            utts, samples=sm.params.bootstrap_samples, seed=sm.params.seed, confidence=sm.params.confidence
        )
    else:  # a failed cell has no transcripts to score: its row keeps the gap
        metrics, scored = {}, utts.iloc[0:0]
    write_csv(sm.output.utterances, scored)
    write_json(sm.output.scores, metrics)
