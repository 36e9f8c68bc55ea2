"""English sentences for synthesized training speech: workflow/edgeasr/data/python-docs-sentences.txt.

The package data behind `training_speech.<name>.text: edgeasr:python-docs-sentences.txt`.

Source: the documentation that ships with CPython (the topic help in pydoc_data/topics.py and the docstrings
of the standard library's public modules, functions and classes), Copyright Python Software Foundation,
PSF License Agreement (https://docs.python.org/3/license.html). Whole sentences of 6-35 words holding
only letters, digits and plain punctuation; duplicates removed. Offline text that is not LibriSpeech:
no test transcript can be in it (the workflow checks that too).

    python resources/text/extract_python_docs.py workflow/edgeasr/data/python-docs-sentences.txt
"""

import contextlib
import importlib
import inspect
import io
import pydoc_data.topics as t
import re
import sys

docs = []
skip = {
    "antigravity",
    "this",
    "idlelib",
    "tkinter",
    "turtle",
    "turtledemo",
    "test",
    "lib2to3",
    "ensurepip",
    "venv",
    "pydoc",
}
for name in sorted(sys.stdlib_module_names):
    if name in skip or name.startswith("_"):
        continue
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            m = importlib.import_module(name)
    except BaseException:
        continue
    if m.__doc__:
        docs.append(m.__doc__)
    for k, v in sorted(vars(m).items()):
        if k.startswith("_"):
            continue
        if (
            (inspect.isfunction(v) or inspect.isclass(v) or inspect.isbuiltin(v))
            and getattr(v, "__module__", None) == name
            and v.__doc__
        ):
            docs.append(v.__doc__)
text = "\n".join([t.topics[k] for k in sorted(t.topics)] + docs)
text = re.sub(r"\s+", " ", text)
sents = re.split(r"(?<=[.!?])\s+(?=[A-Z])", text)
seen = set()
ok = []
for s in sents:
    s = s.strip()
    if not (6 <= len(s.split()) <= 35):
        continue
    if not re.fullmatch(r"[A-Za-z0-9 ,;:'\-\.!?]+", s):
        continue
    if re.search(r"\.\w", s) or " - " in s or "--" in s:
        continue
    if s.lower() in seen:
        continue
    seen.add(s.lower())
    ok.append(s)
open(sys.argv[1], "w").write("\n".join(ok) + "\n")
