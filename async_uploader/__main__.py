"""``python -m async_uploader`` is the CLI."""

from .cli import main

if __name__ == "__main__":
    main()
