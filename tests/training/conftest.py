"""A few real AT&T faces in identity folders, for tiny training runs."""

import shutil
from pathlib import Path

import pytest

ATT = Path(__file__).resolve().parents[2] / ".." / "shared" / "faces" / "att"


def _att_copy(root: Path, people: int, photos: int) -> Path:
    """The first ``photos`` photos of AT&T people 1..``people`` as ROOT/<person>/<images>."""
    for person in range(1, people + 1):
        (root / f"s{person}").mkdir()
        for k in range(1, photos + 1):
            shutil.copy(ATT / f"s{person}" / f"{k}.pgm", root / f"s{person}" / f"{k}.pgm")
    return root


@pytest.fixture(scope="session")
def att_folder(tmp_path_factory):
    """6 AT&T people x 4 photos."""
    return _att_copy(tmp_path_factory.mktemp("att6"), 6, 4)


@pytest.fixture(scope="session")
def att40(tmp_path_factory):
    """All 40 AT&T people x 6 photos."""
    return _att_copy(tmp_path_factory.mktemp("att40"), 40, 6)
