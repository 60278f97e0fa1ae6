"""Local stand-ins for Hyperliquid and Fractrade, for tests and `fractrade-sync demo`."""
