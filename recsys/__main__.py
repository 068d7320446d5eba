"""``python -m recsys``: the same command line as the ``recsys`` script."""
from .cli import main

main(prog_name="recsys")
