from edgeasr.infer_job import run_infer_job
from edgeasr.smk import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    run_infer_job(
        wildcards=dict(sm.wildcards.items()),
        inputs=dict(sm.input.items()),
        outputs=dict(sm.output.items()),
        cell=dict(sm.params.cell),
        energy=dict(sm.params.energy),
        threads=sm.threads,
    )
