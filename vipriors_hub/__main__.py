"""``python -m vipriors_hub`` (and ``accelerate launch -m vipriors_hub``) runs the command line."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
