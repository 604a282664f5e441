"""Keeping native libraries' start-up chatter off the terminal, and importing TensorFlow."""

from __future__ import annotations

import contextlib
import logging
import os
import sys


@contextlib.contextmanager
def native_stderr_silenced():
    """Point file descriptor 2 at /dev/null while native code prints start-up lines.

    TensorFlow's and LiteRT's C++ logging print before any setting can stop
    them. Nothing is silenced when logging is at DEBUG level or when stderr
    has no file descriptor.
    """
    if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow() -> None:
    """Import TensorFlow and Keras quietly (once)."""
    if "tensorflow" in sys.modules:
        return
    with native_stderr_silenced():
        import keras  # noqa: F401
        import tensorflow

        tensorflow.config.list_logical_devices("CPU")
