"""``python -m dyndis_learn``: the ``dyndis-learn`` command line."""

import sys

from dyndis_learn.cli import main

sys.exit(main())
