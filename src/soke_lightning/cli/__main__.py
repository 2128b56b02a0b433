"""`python -m soke_lightning.cli` runs the `soke` command (cluster launchers use this form)."""

import sys

from soke_lightning.cli import main

sys.exit(main())
