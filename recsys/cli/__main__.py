"""``python -m recsys.cli``: the same command line as the ``recsys`` script."""
from . import main

main()
