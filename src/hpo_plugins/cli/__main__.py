"""``python -m hpo_plugins.cli``: the same as the ``hpo-plugins`` command."""

from __future__ import annotations

import sys

from hpo_plugins.cli import main

if __name__ == "__main__":
    sys.exit(main())
