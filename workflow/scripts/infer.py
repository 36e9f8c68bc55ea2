import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821
from edgeasr.infer_job import run_infer_job  # noqa: E402
from edgeasr.smk import job_log  # noqa: E402

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
