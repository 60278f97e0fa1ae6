"""The Hyperliquid adapter: requests, signatures, answers, the exchange's rules, accounts and dexes."""
