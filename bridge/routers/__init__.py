"""One router per concern; auth is attached where ``app.py`` includes them."""
