"""``python -m edgeasr.figures``: see :mod:`edgeasr.figures.cli`."""

import sys

from .cli import main

sys.exit(main())
