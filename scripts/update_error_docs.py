"""Regenerate the table of docs/errors.md from the cases of tests/test_error_table.py.

Run from the repository root after changing a message or adding a case::

    python scripts/update_error_docs.py

Every case of ``CASES`` is run (each in a fresh temporary folder) and its row written,
in the order of ``CASES``; the text above the ``<!-- table -->`` mark is kept.
``tests/test_error_table.py`` then checks the table against the code.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"


def main() -> int:
    if os.environ.get("PYTHONHASHSEED") != "0":  # the size of a TorchScript file in one row
        # varies with the hash seed; the test reads digits as N, a fixed seed keeps the diff clean
        os.execve(
            sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"}
        )
    sys.path.insert(0, str(TESTS))  # the cases and their helpers are test code
    import test_error_table as table

    rows = []
    for case in table.CASES:
        with tempfile.TemporaryDirectory() as folder:
            kind, message = table.message_of(case, Path(folder))
        rows.append(table.table_row(case, kind, message))
    table.DOC.write_text(table.with_table(table.DOC.read_text(encoding="utf-8"), rows))
    print(f"{table.DOC}: {len(rows)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
