"""``python -m strategy_consumers``."""

from strategy_consumers.cli import app

if __name__ == "__main__":
    app()
