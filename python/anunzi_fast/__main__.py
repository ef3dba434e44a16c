"""``python -m anunzi_fast``: the ``anunzi-fast`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
