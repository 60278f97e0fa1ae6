"""fractrade-sync: execute a Fractrade agent's actions on Hyperliquid with your own key."""

__version__ = "0.2.0"  # the one version string: setup.cfg, --version, CHANGELOG.md
__all__ = ["FractradeExecutor", "__version__"]


def __getattr__(name: str):
    # lazy, so `fractrade-sync health` (run by cron every minute) does not import the SDK
    if name == "FractradeExecutor":
        from fractrade_sync.service import FractradeExecutor

        return FractradeExecutor
    raise AttributeError(name)
