"""`python -m pyovl` runs the CLI."""

from pyovl.cli import main

main()
