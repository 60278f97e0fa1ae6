"""The WebSocket feeds: Fractrade's actions (the receiver), the exchange's mids and the account's pushes."""
