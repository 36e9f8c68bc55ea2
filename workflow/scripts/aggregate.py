from edgeasr.aggregate import build_tables
from edgeasr.atomic import write_csv
from edgeasr.smk import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0]) as log:
    cells, utts = build_tables(
        sm.input.cells,
        sm.input.scores,
        sm.input.energy,
        sm.input.utterances,
        sm.params.unsupported,
        sm.params.conditions,
        sm.params.models,
        sm.params.config_hash,
    )
    write_csv(sm.output.utterances, utts)
    write_csv(sm.output.cells, cells)
    log.write(f"{len(cells)} cells: {cells['status'].value_counts().to_dict()}; {len(utts)} utterance rows\n")
