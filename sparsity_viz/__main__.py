"""``python -m sparsity_viz``: see ``cli.py``."""

import sys

from .cli import main

sys.exit(main())
