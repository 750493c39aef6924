from producers.cli import app

app(prog_name="python -m producers")
