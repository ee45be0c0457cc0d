"""The `tf-gradrnn` console command: `tf_gradrnn.cli`, started without TensorFlow's noise.

Importing `tf_gradrnn` imports Keras and TensorFlow, which takes seconds and writes about eight
lines of TensorFlow's C++ log to stderr, whatever TF_CPP_MIN_LOG_LEVEL says (absl logs them
before it is initialized). The package cannot put that import off: importing it registers its
layers with Keras, which `keras.saving.load_model` of a saved model relies on. So the command
starts here, outside the package: it parses the command line with `tf_gradrnn/cli/parser.py`
alone, which answers `--help`, `--version` and usage errors without TensorFlow. A verb then
runs with TF_CPP_MIN_LOG_LEVEL=3 (unless set) and TensorFlow's start-up log held back, shown
only if the start fails; `--debug` shows every log line.
"""

import contextlib
import importlib.util
import os
import sys
import tempfile


def _parser_module():
    """`tf_gradrnn.cli.parser`, run without its packages, whose import imports TensorFlow: it
    and `options`, all it imports, are standard-library Python. They go into `sys.modules`
    under their own names, so that the package, once imported, uses these same modules."""
    root = importlib.util.find_spec("tf_gradrnn").submodule_search_locations[0]
    for name in ("options", "parser"):  # finding a package does not import it
        spec = importlib.util.spec_from_file_location(
            f"tf_gradrnn.cli.{name}", os.path.join(root, "cli", f"{name}.py")
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _held_back_stderr():
    """Sends file descriptor 2, where C++ code logs, to a temporary file; replays it if the
    block fails."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as log:
            os.dup2(log.fileno(), 2)
            try:
                yield
            except BaseException:
                sys.stderr.flush()
                os.dup2(saved, 2)
                log.seek(0)
                sys.stderr.write(log.read().decode(errors="replace"))
                raise
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def main(argv=None) -> int:
    """Runs `tf-gradrnn` with `argv` (default: the command line); returns the exit status."""
    try:
        args = _parser_module().build_parser().parse_args(argv)
    except SystemExit as exit:  # --help, --version and usage errors
        return exit.code
    if args.debug:
        from tf_gradrnn.cli import commands
    else:
        # 3, not 2: also the errors TensorFlow logs whatever the program (no CUDA driver,
        # oneDNN and boolean tensors). A real error raises, and is reported in one line.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        try:
            with _held_back_stderr():
                from tf_gradrnn.cli import commands
        except KeyboardInterrupt:
            print(f"tf-gradrnn {args.verb}: interrupted", file=sys.stderr)
            return 130
    return commands.run(args)


if __name__ == "__main__":
    sys.exit(main())
