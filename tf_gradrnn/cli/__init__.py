"""The `tf-gradrnn` command line: train, evaluate, predict, export and inspect models on data
files, and the demo. An application built on the library (`tf_gradrnn`) and its serving layer
(`tf_gradrnn.serving`); neither of those imports anything from here."""

from tf_gradrnn.cli.commands import main

__all__ = ["main"]
