"""Importing TensorFlow (for conversion, training and the TensorFlow back-end)."""

from __future__ import annotations

import logging
import os
import sys


def import_tensorflow() -> None:
    """Import TensorFlow and Keras with their native start-up lines kept off the terminal.

    TensorFlow's C++ logging prints before any setting can stop it, so file
    descriptor 2 points at /dev/null for the duration of the import (not
    when logging is at DEBUG level, nor when TensorFlow is already loaded).
    """
    if "tensorflow" in sys.modules or logging.getLogger().level <= logging.DEBUG:
        return
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr: nothing to keep quiet
        import keras  # noqa: F401
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import keras  # noqa: F401
            import tensorflow  # noqa: F401

            tensorflow.config.list_logical_devices("CPU")
    finally:
        os.dup2(saved, 2)
        os.close(saved)
