#!/usr/bin/env bash
# The one set-up command (README): installs edgeasr, its pinned dependencies and the default
# config's offline Whisper models into the current Python environment.
#
# torch is installed first, on its own, so that pip keeps a build you already have (a Jetson wheel
# from NVIDIA, a CUDA build) and, where there is none, takes torch 2.13.0 (on this project's CI a local
# CPU build). Any torch in the range pinned in pyproject.toml works.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c 'import torch, sys; v = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]); sys.exit(0 if (2, 4) <= v < (2, 14) else 1)' 2>/dev/null; then
  "$PY" -m pip install "torch==2.13.0"
fi
"$PY" -m pip install -e ".[models,test]"
# espeak-ng and flite speak the training speech of quantization-aware training (config/gq-study.yaml);
# the default study does not need them. Installed here where this is root on Debian/Ubuntu (CI is).
for tts in espeak-ng flite; do
  if ! command -v "$tts" >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      (apt-get install -y -qq "$tts" || { apt-get update -qq && apt-get install -y -qq "$tts"; }) >/dev/null
    else
      echo "note: $tts is not installed; quantization-aware training needs it (apt-get install $tts)" >&2
    fi
  fi
done
"$PY" -c 'import edgeasr, torch, snakemake; print("edgeasr", edgeasr.__version__, "| torch", torch.__version__)'
