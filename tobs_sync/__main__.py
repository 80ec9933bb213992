"""``python -m tobs_sync``: the same as the ``tobs-sync`` command."""

import sys

from tobs_sync.cli import main

sys.exit(main())
