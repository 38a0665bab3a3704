"""``python -m schema validate FILE…``: check activities or RPDE pages against the contract.

Each file (``-`` for standard input) may hold one activity, a list of activities, or an
RPDE page (each updated item's ``data`` is checked as an activity). Problems are printed
one a line as ``FILE: PATH: CODE: MESSAGE``. Exit status: 0 all valid, 1 some problem,
2 a file that could not be read or is not JSON.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, TextIO

import orjson

from schema.validation import Problem, validate_activity, validate_page

EXIT_OK, EXIT_PROBLEMS, EXIT_UNREADABLE = 0, 1, 2
_ITEM_PATH = re.compile(r"^\$\.items\[(\d+)\]")


def _nested(prefix: str, problems: list[Problem]) -> list[Problem]:
    """Problems of a document found inside another, with paths from the outer one."""
    return [Problem(prefix + p.path[1:], p.code, p.message) for p in problems]


def _page_problems(page: dict[str, Any]) -> list[Problem]:
    """The page's own problems, then each item's, with its activity's problems after it."""
    items = page["items"] if isinstance(page["items"], list) else []
    by_item: dict[int, list[Problem]] = defaultdict(list)
    problems: list[Problem] = []
    for problem in validate_page(page):
        item = _ITEM_PATH.match(problem.path)
        (by_item[int(item.group(1))] if item else problems).append(problem)
    for index, item in enumerate(items):
        problems += by_item[index]
        if isinstance(item, dict) and item.get("state") == "updated" and "data" in item:
            problems += _nested(f"$.items[{index}].data", validate_activity(item["data"]))
    return problems


def check_document(doc: Any) -> tuple[str, list[Problem]]:
    """What ``doc`` was taken to be (for the summary line) and every problem in it."""
    if isinstance(doc, list):
        problems = [p for i, item in enumerate(doc) for p in _nested(f"$[{i}]", validate_activity(item))]
        return f"{len(doc)} activities", problems
    if isinstance(doc, dict) and "items" in doc and "type" not in doc:
        count = len(doc["items"]) if isinstance(doc["items"], list) else 0
        return f"an RPDE page of {count} items", _page_problems(doc)
    return "an activity", validate_activity(doc)


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    with open(path, "rb") as file:
        return file.read()


def validate_files(paths: Sequence[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Check each file, print what was found, and return the exit status."""
    out, err = out or sys.stdout, err or sys.stderr
    status = EXIT_OK
    for path in paths:
        try:
            doc = orjson.loads(_read(path))
        except OSError as exc:
            print(f"{path}: cannot read the file: {exc.strerror or exc}.", file=err)
            status = EXIT_UNREADABLE
            continue
        except orjson.JSONDecodeError as exc:
            print(f"{path}: not valid JSON ({exc}); fix the syntax and try again.", file=err)
            status = EXIT_UNREADABLE
            continue
        what, problems = check_document(doc)
        if not problems:
            print(f"{path}: valid ({what})", file=out)
            continue
        noun = "problem" if len(problems) == 1 else "problems"
        print(f"{path}: {len(problems)} {noun} in {what}", file=out)
        for problem in problems:
            print(f"{path}: {problem}", file=out)
        status = max(status, EXIT_PROBLEMS)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m schema", description="Check documents against the Localfeed contract."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser(
        "validate", help="validate activities or RPDE pages", description=__doc__.split("\n\n")[1]
    )
    validate.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="a JSON file: an activity, a list of them, or an RPDE page ('-' reads standard input)",
    )
    args = parser.parse_args(argv)
    return validate_files(args.files)


if __name__ == "__main__":
    sys.exit(main())
