"""``python -m lrdecay`` is the ``lrdecay`` command."""
import sys

from lrdecay.cli import main

sys.exit(main())
