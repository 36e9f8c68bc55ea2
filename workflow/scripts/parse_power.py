import json

from edgeasr.atomic import write_json
from edgeasr.energy import summarize
from edgeasr.smk import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    cell = json.loads(open(sm.input.cell).read())
    reps = int(cell.get("repeats") or 1)
    if cell["status"] != "ok":
        cols = {"energy_backend": cell.get("energy_backend", "none")}
    else:
        cols = summarize(
            cell["energy_backend"],
            sm.input.power_log,
            sm.input.markers,
            audio_s=cell["audio_s"] * reps,
            n_utterances=cell["n_utterances"] * reps,
            rails=sm.params.rails,
            interval_ms=sm.params.interval_ms,
        )
    write_json(sm.output[0], cols)
