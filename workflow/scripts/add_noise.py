from edgeasr.atomic import atomic_dir, write_csv
from edgeasr.dataset import read_manifest
from edgeasr.noise import Condition, run_condition
from edgeasr.smk import job_log

sm = snakemake  # noqa: F821
cond = Condition(**sm.params.condition)
with job_log(sm.log[0]) as log, atomic_dir(sm.output.audio) as tmp:
    table = run_condition(
        read_manifest(sm.input.manifest),
        cond,
        tmp,
        seed=sm.params.seed,
        fmt=sm.params.format,
        max_snr_error_db=sm.params.max_snr_error_db,
        record_dir=sm.output.audio,
    )
    write_csv(sm.output.table, table)
    log.write(
        f"{cond.name}: {len(table)} files, {int(table['clipped_samples'].sum())} clipped samples, "
        f"measured SNR {table['measured_snr_db'].min()}..{table['measured_snr_db'].max()} dB\n"
    )
