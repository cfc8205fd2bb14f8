"""Entry point for ``python -m tools.bench`` (and ``python -m tools.bench republish``)."""

import sys

if sys.argv[1:2] == ["republish"]:
    from tools.bench.republish_cli import main as republish_main

    sys.exit(republish_main(sys.argv[2:]))

from tools.bench.cli import main

sys.exit(main())
