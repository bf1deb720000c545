"""`python -m wam_pipe ...` (what torchrun launches) is the same CLI as `wam-pipe ...`."""

import sys

from wam_pipe.cli import main

if __name__ == "__main__":
    sys.exit(main())
