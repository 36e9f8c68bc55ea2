import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821
from edgeasr.atomic import atomic_dir  # noqa: E402
from edgeasr.download import safe_extract  # noqa: E402
from edgeasr.smk import job_log  # noqa: E402

with job_log(snakemake.log[0]) as log, atomic_dir(snakemake.output[0]) as tmp:  # noqa: F821
    names = safe_extract(snakemake.input[0], tmp)  # noqa: F821
    log.write(f"extracted {len(names)} members\n")
