"""The quantize_model job's guards: a QAT training split may never hold a test utterance."""

import copy

import pandas as pd
import pytest

from edgeasr.config import ConfigError, validate
from edgeasr.quantize_job import QuantizeError, spec_from_config, training_batches


def test_config_refuses_a_training_split_overlapping_the_test_set(default_config):
    cfg = copy.deepcopy(default_config)
    cfg["quantizers"] = {
        "gq3qat": {
            "method": "gq",
            "bits": 3,
            "mode": "qat",
            "training": {"extracted_dir": "/data/LibriSpeech", "speakers": ["3752"]},
        }
    }
    with pytest.raises(ConfigError, match=r"quantizers.gq3qat.training: speakers \['3752'\] / chapters all overlap"):
        validate(cfg)
    cfg["quantizers"]["gq3qat"]["training"]["speakers"] = ["1272", "2428"]
    validate(cfg)  # other speakers: accepted
    cfg["quantizers"]["gq3qat"]["training"] = {}
    with pytest.raises(ConfigError, match=r"mode 'qat' needs training data: speech \(a training_speech entry"):
        validate(cfg)


def test_job_refuses_shared_utterances_even_when_ids_were_not_declared(librispeech_dir, tmp_path):
    test_manifest = tmp_path / "manifest.csv"
    pd.DataFrame({"utt_id": ["3752-4944-0003", "x"]}).to_csv(test_manifest, index=False)
    q = {"method": "gq", "bits": 3, "mode": "qat", "training": {"extracted_dir": str(librispeech_dir.parents[2])}}
    with pytest.raises(QuantizeError, match="holds 1 test utterances"):
        training_batches(q, processor=None, test_manifest=test_manifest)


def test_spec_from_config_maps_keys():
    s = spec_from_config(
        {
            "method": "uniform",
            "bits": {"model.encoder.*": 4, "*": 6},
            "per_channel": False,
            "seed": 3,
            "steps": 50,
            "skip": ["*embed*"],
        }
    )
    assert s.method == "uniform" and s.bits == {"model.encoder.*": 4, "*": 6} and not s.per_channel
    assert s.seed == 3 and s.steps == 50 and s.skip == ("*embed*",)
