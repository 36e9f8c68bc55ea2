from edgeasr.models import fetch_model
from edgeasr.smk import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0]) as log:
    prov = fetch_model(
        sm.wildcards.model, dict(sm.params.source), sm.output[0], fmt=sm.params.format, on_failure=sm.params.on_failure
    )
    if prov.get("status") == "failed":
        log.write(f"FAILED (its cells are recorded as failed, inference.on_failure: record): {prov['error']}\n")
    else:
        log.write(
            f"{sm.wildcards.model}: {len(prov['files'])} files, {prov['bytes'] / 1e6:.1f} MB"
            f"{', commit ' + prov['hf_commit'] if prov.get('hf_commit') else ''}\n"
        )
