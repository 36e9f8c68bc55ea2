from edgeasr.models import convert_model
from edgeasr.smk import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0]) as log:
    target = "transformers" if sm.rule == "convert_ct2_to_transformers" else "ctranslate2"
    summary = convert_model(sm.input[0], sm.output[0], target)
    log.write(f"converted: {summary}\n")
