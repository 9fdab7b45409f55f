"""``python -m iotvideo`` is the ``iotvideo`` command."""

from iotvideo.cli import main

main()
