"""``python -m supporting_families.audit``: the ledger's command line (see :mod:`.cli`)."""

import sys

from supporting_families.audit.cli import main

sys.exit(main())
