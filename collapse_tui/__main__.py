import sys

from collapse_tui.cli import main

sys.exit(main())
