"""``python -m signlab``: the command line (see :mod:`signlab.cli`)."""
from .cli import entry

entry()
