"""``python -m mockserver`` is the ``tapedeck`` command."""

from mockserver.cli import main

raise SystemExit(main())
