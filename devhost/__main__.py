"""``python -m devhost`` (what ``make run`` runs): see ``devhost.launcher``."""

import sys

from devhost.launcher import main

sys.exit(main())
