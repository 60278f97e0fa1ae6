"""fractrade-sync: execute a Fractrade agent's actions on Hyperliquid with your own key."""

__version__ = "0.1.0"

from .service import FractradeExecutor  # noqa: E402

__all__ = ["FractradeExecutor", "__version__"]
