from edgeasr.quantize_job import quantize_checkpoint
from edgeasr.smk import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0]) as log:
    report = quantize_checkpoint(
        sm.input.model,
        sm.output.packed,
        sm.output.report,
        dict(sm.params.quantizer),
        family=sm.params.family,
        test_manifest=sm.input.manifest,
        threads=sm.threads,
        curve_path=sm.output.curve,
        training_manifest=sm.input.get("training_manifest"),
        teacher_targets=sm.input.get("teacher_targets"),
    )
    log.write(f"{sm.wildcards.model} {sm.wildcards.precision}: {report}\n")
