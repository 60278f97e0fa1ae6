"""`python -m fractrade_sync` is the `fractrade-sync` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
