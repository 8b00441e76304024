"""``python -m skyfleet``: the same as the ``skyfleet`` command."""

import sys

from skyfleet.cli import main

sys.exit(main())
