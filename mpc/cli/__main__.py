"""`python -m mpc.cli ...` is `smpc ...`."""

import sys

from mpc.cli.main import main

sys.exit(main())
