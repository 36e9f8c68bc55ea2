"""transformers Whisper checkpoint -> CTranslate2 model (for faster-whisper), with CTranslate2's own converter."""

from __future__ import annotations

import shutil
from pathlib import Path

from .atomic import atomic_dir


def convert_transformers_to_ct2(hf_dir, out_dir, quantization: str = "float32") -> dict:
    """Convert with ``ctranslate2.converters.TransformersConverter`` (weights stored as ``quantization``).

    float32 by default: CTranslate2 converts the stored weights to each cell's ``compute_type`` when
    it loads them, so an fp32 cell decodes with the checkpoint's own float32 weights (a float16 store
    would round them first) and fp16 / int8 cells get what they would get from any store.
    """
    import ctranslate2

    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        conv = ctranslate2.converters.TransformersConverter(
            str(hf_dir), copy_files=[f for f in ("tokenizer.json", "preprocessor_config.json") if (hf_dir / f).exists()]
        )
        shutil.rmtree(tmp)  # the converter wants to create the folder itself
        conv.convert(str(tmp), quantization=quantization, force=True)
    return {"from": str(hf_dir), "quantization": quantization, "ctranslate2": ctranslate2.__version__}
