"""``python -m supporting_families.rights``: see :mod:`supporting_families.rights.cli`."""

import sys

from supporting_families.rights.cli import main

sys.exit(main())
