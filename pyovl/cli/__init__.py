"""The command line: a thin click layer over the engine and the daemon.

base.py       the click group and what every verb shares (submit() to the
              one writer, engine_of() to read, emit() to print rows)
overlays.py   create/delete/show/modify-overlay, set-linkprop, plugins
vnics.py      create/delete/show-vnic
lifecycle.py  up (--check), diff, serve, down, up-overlay, check-kernel
lab.py mesh.py dp.py   the lab, the mesh and the data-path plumbing groups
app.py        registers them all; main(), the entry point
show.py       dladm's rows (show-overlay, -f, -t, show-vnic); ofmt.py renders them
"""

from pyovl.cli.app import main

__all__ = ["main"]
