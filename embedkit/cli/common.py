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
    """``--backbone``, ``--model``, ``--weights`` and face-finding options."""

    @click.option("--backbone", default=None, help="Pretrained backbone by name (default: facenet).")
    @click.option("--model", "model_dir", default=None, type=click.Path(file_okay=False),
                  help="A fine-tuned model folder (from `embedkit finetune`).")
    @click.option("--weights", default="pretrained", show_default=True,
                  help="For --backbone: 'pretrained', 'random' or a local weights file.")
    @click.option("--detector", default="yunet", show_default=True, help="Face detector: yunet or mtcnn.")
    @click.option("--no-detect", is_flag=True, help="Images are already face crops: skip detection.")
    @click.option("--center-crop", default=1.0, show_default=True, type=click.FloatRange(0.05, 1.0),
                  help="With --no-detect: keep this central fraction of the image.")
    @click.option("--flip", is_flag=True, help="Also embed mirror images (slower, may be more accurate).")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def make_pipeline(backbone, model_dir, weights, detector, no_detect, center_crop, flip, batch_size=64):
    """Encoder and face pipeline from the shared options."""
    import_tensorflow_quietly()
    from embedkit.encoder import load_encoder
    from embedkit.faces import FaceExtractor
    from embedkit.pipeline import FacePipeline

    encoder = load_encoder(model_dir, backbone, weights)
    extractor = FaceExtractor(encoder.input_size, None if no_detect else detector, center_crop)
    return FacePipeline(encoder, extractor, batch_size=batch_size, flip=flip)


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
