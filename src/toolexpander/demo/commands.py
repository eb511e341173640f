"""Subcommands of this sub-package (filled in by its issue)."""


def register(subparsers) -> None:
    """Add this sub-package's subcommands."""
