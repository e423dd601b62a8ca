"""`python -m fastconv`: see `fastconv.cli` (train, evaluate, info)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
