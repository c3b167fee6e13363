"""``python -m singleshot ...`` (what ``torchrun -m singleshot`` runs)."""

import sys

from singleshot.cli import main

sys.exit(main())
