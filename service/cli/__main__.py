"""``python -m service.cli``: the optisweep command."""

from service.cli import app

app()
