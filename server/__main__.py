"""``python -m server``: the server's commands (also available as ``dgm-grader <command>``)."""

import sys

from server.commands import main

sys.exit(main())
