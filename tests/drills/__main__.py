"""`python -m tests.drills`: run every drill and print the drill report (`make drill`)."""

import sys

from tests.drills.report import run

sys.exit(run(sys.argv[1:]))
