"""Options and output helpers shared by the click commands."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys

import click

from embedkit.errors import EmbedkitError

logger = logging.getLogger("embedkit.cli")


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


def make_pipeline(options: dict, stored: dict | None = None, batch_size: int = 64):
    """Encoder and face pipeline from the shared options (see :func:`pipeline_source`)."""
    import_tensorflow_quietly()
    from embedkit.pipeline import pipeline_from_source

    source = pipeline_source(options, stored)
    return pipeline_from_source(source, batch_size), source


def emit(as_json: bool, data, text: str | None = None) -> None:
    """Print ``data`` as JSON or ``text`` for people."""
    if as_json:
        click.echo(json.dumps(data, indent=2, default=_jsonable))
    elif text is not None:
        click.echo(text)


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
            raise click.ClickException(str(exc)) from None
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
    """Import TensorFlow with its native start-up lines kept off the terminal.

    TensorFlow's C++ logging prints before any setting can stop it, so the
    CLI points file descriptor 2 at /dev/null for the duration of the import.
    """
    if "tensorflow" in sys.modules or logging.getLogger().level <= logging.DEBUG:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
            tensorflow.config.list_logical_devices("CPU")
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else (logging.INFO if verbose == 1 else logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if verbose < 2:
        for name in ("tensorflow", "absl", "h5py"):
            logging.getLogger(name).setLevel(logging.ERROR)
