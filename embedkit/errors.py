"""Exceptions embedkit raises; the CLI turns each into a one-line message."""


class EmbedkitError(Exception):
    """Base class for errors a user can act on."""


class UnknownNameError(EmbedkitError, KeyError):
    """A name (backbone, detector, ...) that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsError(EmbedkitError):
    """Weights are missing, unreadable or fail their checksum."""


class ImageError(EmbedkitError):
    """An image file that cannot be read as a picture.

    ``path`` names the file and ``reason`` says why, so callers can report
    ``path: reason`` and go on with the rest.
    """

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ModelError(EmbedkitError):
    """A model folder that is missing, incomplete or from another version."""


class IndexMismatchError(EmbedkitError):
    """An index queried or updated with a model other than the one that built it."""


class IndexStoreError(EmbedkitError):
    """An index folder that cannot be opened."""
