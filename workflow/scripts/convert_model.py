import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821
from edgeasr.smk import job_log  # noqa: E402

sm = snakemake  # noqa: F821
with job_log(sm.log[0]) as log:
    if sm.rule == "convert_ct2_to_transformers":
        from edgeasr.ct2_to_hf import convert_ct2_whisper

        summary = convert_ct2_whisper(sm.input[0], sm.output[0], dtype="float32")
    else:
        from edgeasr.hf_to_ct2 import convert_transformers_to_ct2

        summary = convert_transformers_to_ct2(sm.input[0], sm.output[0])
    log.write(f"converted: {summary}\n")
