"""The ``python -m training`` commands, one module per group; ``training.cli`` assembles them."""
