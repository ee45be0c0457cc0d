"""RESULTS.md is shared: each benchmark script owns one section of it, between its own markers,
and rewrites only that section, so the hand-written text around it survives a rerun."""

from pathlib import Path


def markers(script: str) -> tuple[str, str]:
    return f"<!-- {script}: begin -->", f"<!-- {script}: end -->"


def write_section(path: Path, script: str, section: str) -> None:
    """Replaces `script`'s section of `path` with `section` (appends it if absent)."""
    begin, end = markers(script)
    section = f"{begin}\n{section.strip()}\n{end}"
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
