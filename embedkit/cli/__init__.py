"""The ``embedkit`` command: thin click commands over the Python API."""

from __future__ import annotations

import importlib

import click

from embedkit.cli.common import quiet_native_logs, setup_logging

# Each module defines one click command (or group) named after it.
COMMAND_MODULES = ("compare", "index", "query", "finetune", "evaluate", "weights", "backbones", "demo", "cluster", "people", "find",
                   "calibrate", "serve")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.version_option(package_name="embedkit")
def main(verbose: int) -> None:
    """Compare faces, fine-tune face encoders and search photo libraries."""
    quiet_native_logs()
    setup_logging(verbose)


def _register() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"embedkit.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"embedkit.cli.{name}":
                raise
            continue
        main.add_command(getattr(module, "command"))


_register()
