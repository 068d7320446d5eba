"""Option texts shared by the command modules (one wording of recsys.io's rule for outputs)."""
from __future__ import annotations

#: --force of commands that write one file.
FORCE_FILE = ("Replace --out even if recsys did not write it (the old file is moved into "
              ".recsys-trash/ beside it, and the move is printed).")
#: --force of commands that write a folder.
FORCE_DIR = ("Replace --out even if it holds files recsys did not write (the folder is moved into "
             ".recsys-trash/ beside it, and the move is printed).")
