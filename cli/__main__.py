"""`python -m torchtui.cli`: the same as the `torchtui` command."""

import sys

from torchtui.cli.main import main

sys.exit(main())
