"""Entry point: ``python -m bridge --help``."""

from bridge.cli import cli

if __name__ == "__main__":
    cli()
