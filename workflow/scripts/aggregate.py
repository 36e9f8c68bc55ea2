from edgeasr.aggregate import CellFiles, build_tables
from edgeasr.atomic import write_csv
from edgeasr.smk import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0]) as log:
    cells, utts = build_tables(
        [CellFiles(*f) for f in zip(sm.input.cells, sm.input.transcripts, sm.input.power_logs, sm.input.markers)],
        sm.params.unsupported,
        sm.params.conditions,
        sm.params.models,
        sm.params.config_hash,
        scoring=sm.params.scoring,
        energy=sm.params.energy,
        workers=sm.threads,
    )
    write_csv(sm.output.utterances, utts)
    write_csv(sm.output.cells, cells)
    log.write(f"{len(cells)} cells: {cells['status'].value_counts().to_dict()}; {len(utts)} utterance rows\n")
