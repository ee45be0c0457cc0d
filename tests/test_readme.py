"""README.md promises that stay true: its quick example is examples/quickstart.py, verbatim,
and CI runs exactly the test command it gives."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    return README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def first_code_block(text: str) -> str:
    return re.search(r"```(?:python|bash)\n(.*?)```", text, re.S).group(1)


def test_quick_example_is_the_quickstart_script():
    script = (ROOT / "examples" / "quickstart.py").read_text()
    body = script.split('"""', 2)[2].lstrip("\n")  # without the module docstring
    assert first_code_block(section("Quick example")) == body


def test_ci_runs_the_readme_test_command():
    command = first_code_block(section("Run the tests")).strip()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert command in ci_lines
