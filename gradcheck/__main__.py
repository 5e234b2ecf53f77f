"""``python -m gradcheck MODULE...``: the same as the ``gradcheck`` command."""

from gradcheck.cli import main

raise SystemExit(main())
