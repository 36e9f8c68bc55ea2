from edgeasr.atomic import atomic_dir
from edgeasr.dataset import Selection, build_manifest, summary, write_manifest
from edgeasr.smk import job_log

sm = snakemake  # noqa: F821
root = sm.params.root or sm.input[0]
sub = sm.params.subset
with job_log(sm.log[0]) as log, atomic_dir(sm.output.resampled) as tmp:
    manifest, skipped = build_manifest(
        root,
        Selection(sub.get("speakers", "all"), sub.get("chapters", "all"), sub.get("max_utterances")),
        on_error=sm.params.on_error,
        resample_dir=tmp,
        record_dir=sm.output.resampled,
    )
    write_manifest(manifest, skipped, sm.output.manifest, sm.output.skipped)
    log.write(f"manifest: {summary(manifest)}; skipped: {len(skipped)}\n")
