from edgeasr.atomic import atomic_dir
from edgeasr.download import safe_extract
from edgeasr.smk import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0]) as log, atomic_dir(sm.output[0]) as tmp:
    names = safe_extract(sm.input[0], tmp, max_bytes=int(sm.params.max_bytes), max_members=int(sm.params.max_members))
    log.write(f"extracted {len(names)} members\n")
