from meta_consumer.cli import app

app(prog_name="python -m meta_consumer")
