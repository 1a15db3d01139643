"""``python -m signlab``: the command line (see :mod:`signlab.cli`)."""
import os

from .launch import NICENESS_ENV

if os.environ.get(NICENESS_ENV):  # a background worker started by signlab.launch yields the CPU to pages
    try:
        os.nice(int(os.environ.pop(NICENESS_ENV)))
    except (OSError, ValueError, AttributeError):  # not allowed, not a number, or no os.nice: run as is
        pass

from .cli import entry  # noqa: E402 - after the priority is set, so nothing before it runs at full priority

entry()
