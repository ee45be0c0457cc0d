"""The `tf-gradrnn` command line: train, evaluate, predict, export and inspect models on data
files, and the demo. An application built on the library (`tf_gradrnn`) and its serving layer
(`tf_gradrnn.serving`); neither of those imports anything from here.

The console command starts in `tf_gradrnn_launcher`, outside this package, so that `--help`
and `--version` need no TensorFlow; `main` runs the command in a process that has it.
"""

from tf_gradrnn.cli.commands import main

__all__ = ["main"]
