"""``python -m refcnn``: see refcnn.cli."""

import sys

from .cli import main

sys.exit(main())
