"""``python -m workflow``: the ``taskloom`` command, for when its script is not on PATH."""

from workflow._cli import main

raise SystemExit(main())
