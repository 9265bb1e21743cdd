"""``python -m galu`` is the ``galu`` command."""

from galu.cli import main

main()
