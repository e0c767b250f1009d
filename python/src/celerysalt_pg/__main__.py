"""``python -m celerysalt_pg``: the same as the ``celerysalt-pg`` command."""

import sys

from celerysalt_pg.cli import main

sys.exit(main())
