"""`python -m tf_gradrnn.cli`: the `tf-gradrnn` command, run after the package has imported
TensorFlow (with its start-up log); the installed `tf-gradrnn` starts without it."""

import sys

from tf_gradrnn.cli.commands import main

sys.exit(main())
