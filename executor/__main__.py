from executor.cli import app

app(prog_name="python -m executor")
