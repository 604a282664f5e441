"""``python -m embedkit.cli``: the ``embedkit`` command."""

from embedkit.cli import main

main(prog_name="embedkit")
