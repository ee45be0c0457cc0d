"""Version folders of a TensorFlow Serving model: their numbers and their permissions.

TF Serving's file-system source loads the sub-folders of `--model_base_path` whose names parse as
an int64 (`tensorflow_serving/sources/storage_path/file_system_storage_path_source.cc`), so a
version is an integer in 1..2**63 - 1 written in ASCII digits. Other names (`.tmp-...`, `²`,
`٣`, which Python's `int` would read as 3) are not versions and are ignored here too.

The server often runs as another user than the one who exported (the `tensorflow/serving` image,
a service account), so an exported version must be readable by everyone: folders 0755, files
0644, whatever the exporting process' umask.
"""

import numbers
import os
from pathlib import Path

MAX_VERSION = 2**63 - 1  # TF Serving reads versions as int64
FOLDER_MODE, FILE_MODE = 0o755, 0o644


def checked_version(version) -> int:
    """`version` as an int, if it is an integer (a NumPy one too) in 1..2**63 - 1."""
    if isinstance(version, bool) or not isinstance(version, numbers.Integral):
        raise ValueError(f"version must be a positive integer, got {version!r}.")
    version = int(version)
    if not 1 <= version <= MAX_VERSION:
        raise ValueError(
            f"version must be a positive integer up to 2**63 - 1 (TF Serving reads versions as "
            f"int64), got {version}."
        )
    return version


def version_number(name: str) -> int | None:
    """The version a folder called `name` holds for TF Serving, or None if it is not one."""
    if not (name.isascii() and name.isdigit()):
        return None
    number = int(name)
    return number if number <= MAX_VERSION else None


def next_version(export_dir: Path) -> int:
    """1 + the largest version in `export_dir` (1 when there is none)."""
    found = [version_number(path.name) for path in export_dir.iterdir()]
    latest = max((number for number in found if number is not None), default=0)
    if latest == MAX_VERSION:
        raise ValueError(
            f"{export_dir} holds version {MAX_VERSION}, the largest TF Serving reads: pass a "
            "free version explicitly."
        )
    return latest + 1


def make_dirs_readable(folder: Path) -> None:
    """Creates `folder` and its missing parents, each readable by everyone (0755)."""
    missing = [path for path in (folder, *folder.parents) if not path.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    for path in missing:
        path.chmod(FOLDER_MODE)


def make_tree_readable(folder: Path) -> None:
    """Sets 0755 on `folder` and every folder below it, 0644 on every file below it.

    Needed because `tempfile.mkdtemp` creates 0700 folders and the umask may be stricter than
    022; explicit modes do not depend on either.
    """
    folder.chmod(FOLDER_MODE)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            Path(root, name).chmod(FOLDER_MODE)
        for name in files:
            Path(root, name).chmod(FILE_MODE)
