"""``python -m service.cli``: the optisweep command."""

from optisweep.service.cli import app

app()
