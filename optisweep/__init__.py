"""optisweep from Python: ``optisweep.Client()`` submits sweeps, follows them and reads their
leaderboards, reports, trials and metrics (as DataFrames with pandas).

    import optisweep

    client = optisweep.Client()  # http://127.0.0.1:8000, with the CLI's token
    sweep = client.submit("examples/digits-optimizers.yaml")
    sweep.wait()
    print(sweep.leaderboard().to_pandas())
"""

from importlib.metadata import PackageNotFoundError, version

from optisweep.service.client import *  # noqa: F403  (the client's public names are optisweep's)
from optisweep.service.client import __all__ as __all__

try:
    __version__ = version("optisweep")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0"
