"""``python -m expc``: the same command line as the ``expc`` script."""

from expc.cli import entry

entry()
