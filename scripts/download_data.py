"""Download and check the DynDis datasets: the same as the ``dyndis-envs`` command.

Usage: python scripts/download_data.py download shapes3d [--data-dir DIR]   (see --help)
"""

import sys

from dyndis_envs.cli import main

if __name__ == "__main__":
    sys.exit(main())
