"""``python -m node.cli``: the ``pinion`` command."""

import sys

from .main import main

sys.exit(main())
