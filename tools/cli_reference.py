"""Writes docs/cli.md, the reference of every option, from the option table: ``python -m tools.cli_reference``.

The table (``async_uploader/options.py``) is the one place an option is described; tests/test_options.py fails
while docs/cli.md differs from what this writes.
"""

from __future__ import annotations

from pathlib import Path

from async_uploader.options import reference_markdown

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def main() -> None:
    REFERENCE.write_text(reference_markdown(), encoding="utf-8")
    print(f"wrote {REFERENCE}")


if __name__ == "__main__":
    main()
