"""Keeping native libraries' start-up chatter off the terminal, and importing TensorFlow."""

from __future__ import annotations

import contextlib
import logging
import os
import sys


@contextlib.contextmanager
def native_stderr_silenced(fds: tuple[int, ...] = (2,)):
    """Point file descriptors ``fds`` (default: stderr) at /dev/null while native code prints start-up lines.

    TensorFlow's and LiteRT's C++ logging print before any setting can stop
    them. Nothing is silenced when logging is at DEBUG level or when a
    descriptor is not usable.
    """
    if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
        yield
        return
    saved = {}
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd in fds:
            saved[fd] = os.dup(fd)
    except (OSError, ValueError, AttributeError):
        for copy in saved.values():
            os.close(copy)
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            for fd in fds:
                os.dup2(devnull.fileno(), fd)
            yield
    finally:
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)


def import_tensorflow() -> None:
    """Import TensorFlow and Keras quietly (once)."""
    if "tensorflow" in sys.modules:
        return
    with native_stderr_silenced():
        import keras  # noqa: F401
        import tensorflow

        tensorflow.config.list_logical_devices("CPU")
