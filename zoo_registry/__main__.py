"""``python -m zoo_registry ...`` runs the ``zoo`` command line (for environments without the script on PATH)."""

import sys

from .cli.main import main

sys.exit(main())
