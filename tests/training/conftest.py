"""A few real AT&T faces in identity folders, for tiny training runs."""

import shutil
from pathlib import Path

import pytest

ATT = Path(__file__).resolve().parents[2] / ".." / "shared" / "faces" / "att"


@pytest.fixture(scope="session")
def att_folder(tmp_path_factory):
    """6 AT&T people x 4 photos as DATA/<person>/<images>."""
    root = tmp_path_factory.mktemp("att6")
    for person in range(1, 7):
        (root / f"s{person}").mkdir()
        for k in range(1, 5):
            shutil.copy(ATT / f"s{person}" / f"{k}.pgm", root / f"s{person}" / f"{k}.pgm")
    return root
