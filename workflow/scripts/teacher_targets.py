from edgeasr.distill import teacher_targets
from edgeasr.smk import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0]) as log:
    df = teacher_targets(
        sm.input.model, sm.input.manifest, sm.output[0], threads=sm.threads, language=sm.params.language
    )
    log.write(f"{len(df)} utterances decoded by the fp32 model, {int(df['n_tokens'].sum())} tokens\n")
