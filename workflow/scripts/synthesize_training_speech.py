from pathlib import Path

from edgeasr.smk import job_log
from edgeasr.training_speech import SpeechSettings, build_training_speech

sm = snakemake  # noqa: F821
with job_log(sm.log[0]) as log:
    man = build_training_speech(
        SpeechSettings.from_config(sm.params.settings),
        sm.input.test_manifest,
        Path(sm.output.manifest).parent,
        sm.output.report,
    )
    log.write(f"{len(man)} utterances, {man['seconds'].sum() / 3600:.2f} h\n")
