"""The command line: a thin click layer over the engine and the daemon.

app.py    the verbs (dladm's, up/diff/down, lab, mesh, dp); each parses its
          arguments, hands a change to the one writer or reads, and prints
show.py   dladm's rows (show-overlay, -f, -t, show-vnic); ofmt.py renders them
"""

from pyovl.cli.app import main

__all__ = ["main"]
