"""``python -m guardrl.cli``: the ``guardrl`` command."""

from guardrl.cli import main

main()
