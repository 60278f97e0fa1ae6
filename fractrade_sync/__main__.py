"""`python -m fractrade_sync` is the `fractrade-sync` command."""

import sys

from fractrade_sync.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
