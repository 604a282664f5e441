"""The ``embedkit`` command: thin click commands over the Python API."""

from __future__ import annotations

import importlib

import click

from embedkit.cli.common import EmbedkitGroup, quiet_native_logs, remember_json, setup_logging

# Each module defines one click command (or group) named after it.
COMMAND_MODULES = ("compare", "index", "query", "cluster", "people", "find", "calibrate", "serve", "finetune",
                   "evaluate", "weights", "backbones", "info", "demo")


@click.group(cls=EmbedkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug); also after the command name.")
@click.option("--json", "as_json", is_flag=True, help="JSON output (errors as JSON on stderr); also after the name.")
@click.version_option(package_name="embedkit")
@click.pass_context
def main(ctx, verbose: int, as_json: bool) -> None:
    """Compare faces, fine-tune face encoders and search photo libraries.

    Exit codes: 0 done; 1 error (bad input, model or index); 2 usage error;
    130 interrupted.
    """
    quiet_native_logs()
    setup_logging(verbose)
    remember_json(ctx, as_json)


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
