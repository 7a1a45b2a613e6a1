"""``python -m retailblocks.cli``: the ``blocks`` command without its console script."""

from retailblocks.cli import main

if __name__ == "__main__":
    main()
