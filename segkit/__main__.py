"""`python -m segkit <command>` (also what `torchrun -m segkit train` runs)."""

from segkit.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
