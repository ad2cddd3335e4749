"""Entry point: ``python -m bench``."""

import sys

from bench.cli import main

if __name__ == "__main__":  # not again in the worker processes that spawn this module anew
    sys.exit(main())
