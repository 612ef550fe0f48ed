"""`python -m segnet_edge` = `segnet-edge`."""

import sys

from segnet_edge.cli import main

sys.exit(main())
