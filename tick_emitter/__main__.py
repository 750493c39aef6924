from tick_emitter.cli import app

app(prog_name="python -m tick_emitter")
