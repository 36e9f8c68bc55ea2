import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821
from edgeasr.models import fetch_model  # noqa: E402
from edgeasr.smk import job_log  # noqa: E402

sm = snakemake  # noqa: F821
with job_log(sm.log[0]) as log:
    prov = fetch_model(sm.wildcards.model, dict(sm.params.source), sm.output[0])
    log.write(f"{sm.wildcards.model}: {len(prov['files'])} files, {prov['bytes'] / 1e6:.1f} MB\n")
