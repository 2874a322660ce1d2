"""``python -m pyvene`` (and ``torchrun -m pyvene ...``): the command line, see
:mod:`pyvene.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
