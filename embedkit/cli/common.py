"""Options and output helpers shared by the click commands.

Conventions every command gets (new commands: nothing to do but use these):

- ``--json`` and ``-v``/``-vv`` work before or after the command name
  (:class:`EmbedkitGroup` moves them). A command that prints JSON declares
  ``@click.option("--json", "as_json", is_flag=True)`` and calls
  :func:`emit`, which also honours a ``--json`` given before the name and
  stamps dicts with ``"schema": "embedkit.<command>/<version>"``.
- Library errors: wrap the command in ``@report_errors``; an
  :class:`~embedkit.errors.EmbedkitError` becomes one line on stderr, or
  under ``--json`` one JSON object ``{"schema": "embedkit.error/1",
  "error": {"message", "exit_code"}}`` on stderr (usage errors too).
- Exit codes (:data:`EXIT_CODES`): 0 done, 1 error (bad input, model or
  index), 2 bad usage (unknown option, missing argument), 130 interrupted.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys

import click

from embedkit.errors import EmbedkitError
from embedkit.textsafe import printable

logger = logging.getLogger("embedkit.cli")

SCHEMA_VERSION = 1
EXIT_CODES = {0: "done", 1: "error: bad input, model or index (one line says which and why)",
              2: "usage error: unknown option, missing or bad argument", 130: "interrupted (work so far is kept)"}
JSON_FLAG = "--json"
VERBOSE_FLAGS = ("-v", "-vv", "-vvv", "--verbose")
_JSON_META = "embedkit.json"


def _declares(command, flag: str) -> bool:
    return any(flag in getattr(param, "opts", ()) for param in command.params)


def _wants_json(args) -> bool:
    args = list(args)
    return JSON_FLAG in (args[:args.index("--")] if "--" in args else args)


class EmbedkitGroup(click.Group):
    """The ``embedkit`` group: shared flags accepted after a command name, errors as JSON under ``--json``."""

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, self._hoist(ctx, list(args)))

    def _hoist(self, ctx, args: list[str]) -> list[str]:
        """Move ``-v`` and (for commands without their own) ``--json`` in front of the command name."""
        position = next((i for i, a in enumerate(args) if not a.startswith("-")), None)
        if position is None:
            return args
        command = self.get_command(ctx, args[position])
        if command is None:
            return args
        end = args.index("--") if "--" in args else len(args)
        hoisted, kept = [], []
        for arg in args[position + 1:end]:
            own = command is not None and _declares(command, arg)
            if (arg in VERBOSE_FLAGS or arg == JSON_FLAG) and not own:
                hoisted.append(arg)
            else:
                kept.append(arg)
        return args[:position] + hoisted + [args[position]] + kept + args[end:]

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        args = list(sys.argv[1:] if args is None else args)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code, _wants_json(args), exc)
        except click.exceptions.Abort:
            fail("aborted", 1, _wants_json(args))
        except KeyboardInterrupt:
            fail("interrupted", 130, _wants_json(args))
        sys.exit(result if isinstance(result, int) else 0)


def fail(message: str, exit_code: int, as_json: bool, exc: click.ClickException | None = None):
    """Print an error (one line, or JSON on stderr) and exit with ``exit_code``."""
    if as_json:
        click.echo(_error_json(message, exit_code), err=True)
    elif exc is not None:
        exc.show()
    else:
        click.echo(f"Error: {message}", err=True)
    sys.exit(exit_code)


def report_problem(message: str, as_json: bool) -> None:
    """One line on stderr about one input that was skipped (a JSON error object under ``--json``)."""
    if as_json or json_requested():
        click.echo(_error_json(message, 1), err=True)
    else:
        click.echo(f"skipped {message}", err=True)


def _error_json(message: str, exit_code: int) -> str:
    return json.dumps({"schema": f"embedkit.error/{SCHEMA_VERSION}", "error": {"message": message,
                                                                               "exit_code": exit_code}})


def json_requested() -> bool:
    """True when ``--json`` was given anywhere on the command line."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().meta.get(_JSON_META))


def remember_json(ctx, as_json: bool) -> None:
    """Called by the group with its own ``--json``."""
    ctx.find_root().meta[_JSON_META] = bool(as_json)


def require_files(paths) -> None:
    """Fail at once (before any model loads) if a path does not exist.

    A broken or looping link is left to the reader, which says which it is.
    """
    for path in paths:
        if not os.path.lexists(path):
            raise EmbedkitError(f"{printable(path)}: cannot be read (No such file or directory)")


def encoder_options(func):
    """``--backbone``, ``--model``, ``--weights`` and face-finding options.

    Left unset, they come from the index being used (if any), then from the
    defaults: pretrained facenet, YuNet detection.
    """

    @click.option("--backbone", default=None, help="Pretrained backbone by name (default: facenet).")
    @click.option("--model", "model_dir", default=None, type=click.Path(file_okay=False),
                  help="A fine-tuned model folder (from `embedkit finetune`).")
    @click.option("--weights", default=None,
                  help="For --backbone: 'pretrained' (default), 'random' (seeded; for tests) or a local weights file.")
    @click.option("--detector", default=None, help="Face detector: yunet (default) or mtcnn.")
    @click.option("--no-detect", is_flag=True, default=None,
                  help="Images are already face crops: skip detection.")
    @click.option("--center-crop", default=None, type=click.FloatRange(0.05, 1.0),
                  help="With --no-detect: keep this central fraction of the image (default 1.0).")
    @click.option("--flip", is_flag=True, default=None,
                  help="Also embed mirror images (slower, may be more accurate).")
    @click.option("--runtime", default=None, type=click.Choice(["auto", "tensorflow", "litert"]),
                  help="Inference back-end (default auto: LiteRT once converted, TensorFlow for big jobs).")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


PIPELINE_DEFAULTS = {"backbone": None, "model_dir": None, "weights": "pretrained", "detector": "yunet",
                     "no_detect": False, "center_crop": 1.0, "flip": False}


def pipeline_source(options: dict, stored: dict | None = None) -> dict:
    """The encoder and face settings to use: given options, else ``stored`` ones, else defaults."""
    stored = stored or {}
    given_model = options.get("backbone") is not None or options.get("model_dir") is not None
    source = {}
    for key, default in PIPELINE_DEFAULTS.items():
        value = options.get(key)
        if key in ("backbone", "model_dir", "weights") and given_model:
            # A model given on the command line replaces the stored one entirely.
            value = default if value is None else value
        elif value is None:
            value = stored.get(key, default)
        source[key] = value
    if source["model_dir"]:
        source["model_dir"] = os.path.abspath(source["model_dir"])
    if source["weights"] not in ("pretrained", "random", None):
        source["weights"] = os.path.abspath(source["weights"])
    return source


def make_pipeline(options: dict, stored: dict | None = None, batch_size: int = 64, job: str = "single"):
    """Encoder and face pipeline from the shared options (see :func:`pipeline_source`).

    ``job`` (``single`` or ``bulk``) lets :mod:`embedkit.runtime` pick the
    back-end; ``--runtime`` forces one.
    """
    from embedkit.pipeline import pipeline_from_source

    source = pipeline_source(options, stored)
    if source["weights"] == "random" and not source["model_dir"]:
        import_tensorflow_quietly()  # the random model is seeded with Keras
    return pipeline_from_source(source, batch_size, job=job, backend=options.get("runtime") or "auto"), source


def html_option(func):
    return click.option("--html", default=None, type=click.Path(dir_okay=False),
                        help="Also write the answer as one self-contained HTML page to this file.")(func)


def write_page(path, page: str, quiet: bool = False) -> None:
    """Write an HTML page (replacing the file atomically) and say so on stderr."""
    from pathlib import Path

    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise click.ClickException(f"{path}: cannot write the page ({exc.strerror or exc})") from None
    if not quiet:
        click.echo(f"wrote {path}", err=True)


def emit(as_json: bool, data, text: str | None = None) -> None:
    """Print ``data`` as JSON (``--json`` before or after the command name) or ``text`` for people.

    A dict gets ``"schema": "embedkit.<command>/<version>"`` first unless it has one.
    """
    if as_json or json_requested():
        if isinstance(data, dict) and "schema" not in data:
            data = {"schema": schema_name(), **data}
        click.echo(json.dumps(data, indent=2, default=_jsonable))
    elif text is not None:
        click.echo(text)


def schema_name() -> str:
    """``embedkit.<command>/<version>`` for the running command (sub-commands joined by dots)."""
    ctx = click.get_current_context(silent=True)
    parts = ctx.command_path.split()[1:] if ctx else []
    return f"embedkit.{'.'.join(parts) or 'main'}/{SCHEMA_VERSION}"


def _jsonable(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def report_errors(func):
    """Turn library errors into one-line click errors (exit code 1)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except EmbedkitError as exc:
            raise click.ClickException(printable(exc)) from None
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)

    return wrapper


def quiet_native_logs() -> None:
    """Silence TensorFlow's and OpenCV's start-up chatter (the CLI only)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")


def import_tensorflow_quietly() -> None:
    """Import TensorFlow without its start-up chatter (see :func:`embedkit.runtime.tf.import_tensorflow`)."""
    from embedkit.runtime.tf import import_tensorflow

    import_tensorflow()


class PrintableFormatter(logging.Formatter):
    """Log lines with control characters in their text escaped (file names can hold any)."""

    def formatMessage(self, record) -> str:
        record.message = printable(record.message)
        return super().formatMessage(record)


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else (logging.INFO if verbose == 1 else logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.setFormatter(PrintableFormatter(handler.formatter._fmt if handler.formatter else None))
    if verbose < 2:
        for name in ("tensorflow", "absl", "h5py"):
            logging.getLogger(name).setLevel(logging.ERROR)
