"""python -m attn: see attn.cli."""
import sys

from attn.cli import main

sys.exit(main())
