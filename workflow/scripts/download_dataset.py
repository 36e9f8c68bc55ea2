from edgeasr.download import download_first
from edgeasr.smk import job_log

with job_log(snakemake.log[0]) as log:  # noqa: F821
    src = download_first(
        snakemake.params.sources,
        snakemake.output[0],  # noqa: F821
        timeout=snakemake.params.timeout_s,
        progress_stream=log,
    )  # noqa: F821
    log.write(f"used {src['url']}\n")
