"""The operator's channels: webhook, Telegram, the status endpoint, metrics, the heartbeat file."""
