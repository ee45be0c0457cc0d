"""The long .csv format: one row per step.

    sequence,step,u,v,y        an id column, a time column, feature columns, a target column
    run0,0,-0.13,-0.46,-0.22
    run0,1,0.64,0.22,0.02

Columns are found by name, so their order in the file does not matter, and each name must
appear once in the header. Times must be finite numbers: they order each sequence's rows
numerically, and two rows of a sequence may not have the same time (`1`, `01` and `1e0` are
the same time).
"""

import csv
import math
from collections import Counter
from pathlib import Path

import numpy as np

from tf_gradrnn.cli.data.sequence_data import DataError, SequenceData, name_list, pad


def read_csv(
    path: Path,
    target: bool,
    id_column: str,
    time_column: str,
    target_column: str,
    features: list[str] | None,
    hint: str = "set --feature-columns",
) -> SequenceData:
    """A long-format .csv file, unchecked (`loader.load` checks it); `features`: the feature
    columns, in the order x takes them (None: every other column, in the file's order);
    `hint`: what a message on a missing feature column ends with."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:  # a BOM is not a name
            rows = list(csv.reader(file))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"cannot read {path}: {error}") from error
    if not rows:
        raise DataError(f"{path}: is empty (expected a header row)")
    header = [name.strip() for name in rows[0]]
    index = _column_index(header, path)
    columns = name_list(header)
    if target and target_column not in index:
        raise DataError(
            f"{path}: no target column '{target_column}' (columns: {columns}); set --target-column"
        )
    named = (id_column, time_column, target_column)
    if features is None:
        features = [c for c in header if c not in named]
        if not features:
            raise DataError(f"{path}: no feature columns besides {', '.join(named)}")
    elif not features:
        raise DataError(f"{path}: the list of feature columns is empty; set --feature-columns")
    twice = next((name for name, count in Counter(features).items() if count > 1), None)
    if twice is not None:
        raise DataError(f"{path}: feature column '{twice}' is listed twice; set --feature-columns")
    for kind, name in (("id", id_column), ("time", time_column)):
        if name not in index:
            raise DataError(
                f"{path}: no {kind} column '{name}' (columns: {columns}); set --{kind}-column"
            )
    missing = [name for name in features if name not in index]
    if missing:
        raise DataError(
            f"{path}: no feature column {name_list([repr(m) for m in missing])} "
            f"(columns: {columns}); {hint}"
        )
    value_columns = features + ([target_column] if target else [])
    where = [index[c] for c in value_columns]
    sequences: dict[str, dict[float, tuple[int, str, list[float]]]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise DataError(f"{path} line {line}: {len(row)} fields, the header has {len(header)}")
        values = [
            _number(row[at], column, path, line)
            for column, at in zip(value_columns, where, strict=True)
        ]
        sequence, text = row[index[id_column]], row[index[time_column]]
        time = _number(text, time_column, path, line, "times must be finite numbers")
        steps = sequences.setdefault(sequence, {})
        if time in steps:
            first, first_text, _ = steps[time]
            raise DataError(
                f"{path} line {line}: sequence {sequence} has {time_column} {text} twice (line "
                f"{first} has {first_text})"
            )
        steps[time] = (line, text, values)
    if not sequences:
        raise DataError(f"{path}: holds a header but no rows")
    ordered = [[steps[t] for t in sorted(steps)] for steps in sequences.values()]
    values = [np.array([step[2] for step in steps]) for steps in ordered]
    x, mask = pad([v[:, : len(features)] for v in values])
    y = pad([v[:, len(features)] for v in values])[0] if target else None
    times = [[step[1] for step in steps] for steps in ordered]
    return SequenceData(x, y, mask, list(sequences), times, list(features), str(path))


def _column_index(header: list[str], path: Path) -> dict[str, int]:
    """Each column name's position; a name twice would make 'column u' mean two things."""
    index: dict[str, int] = {}
    for at, name in enumerate(header):
        if name in index:
            raise DataError(
                f"{path}: column '{name}' appears twice in the header (columns {index[name] + 1} "
                f"and {at + 1}); rename one"
            )
        index[name] = at
    return index


def _number(text: str, column: str, path: Path, line: int, rule: str = "") -> float:
    try:
        value = float(text)
    except ValueError:
        rule = f"; {rule}" if rule else ""
        raise DataError(
            f"{path} line {line}: column '{column}' holds {text!r}, not a number{rule}"
        ) from None
    if not math.isfinite(value):
        rule = f"; {rule}" if rule else ""
        raise DataError(f"{path} line {line}: column '{column}' is {text}{rule}")
    return value
