"""Allow `python -m adminkb`, the same as the `adminkb` command."""

import sys

from adminkb.cli import main

sys.exit(main())
