"""`python -m tf_gradrnn.cli`: the `tf-gradrnn` command."""

import sys

from tf_gradrnn.cli.commands import main

sys.exit(main())
