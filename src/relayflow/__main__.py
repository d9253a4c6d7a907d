from relayflow.cli import app

app()
