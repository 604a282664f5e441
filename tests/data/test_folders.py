"""Identity folders and one-photo-per-person sets, on a few real AT&T faces."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from embedkit.data.folders import identity_folders, load_labelled_images, one_photo_per_person
from embedkit.errors import EmbedkitError

ATT = Path(__file__).resolve().parents[2] / ".." / "shared" / "faces" / "att"


@pytest.fixture
def people(tmp_path):
    if not ATT.is_dir():
        pytest.skip("AT&T faces not available")
    for person, count in (("s1", 3), ("s2", 2), ("s3", 1)):
        (tmp_path / person).mkdir()
        for k in range(1, count + 1):
            shutil.copy(ATT / person / f"{k}.pgm", tmp_path / person / f"{k}.pgm")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_identity_folders(people):
    images = identity_folders(people)
    assert images.names == ["s1", "s2", "s3"]
    assert images.labels.tolist() == [0, 0, 0, 1, 1, 2]
    assert all(Path(p).suffix == ".pgm" for p in images.paths)


def test_min_and_max_images(people):
    images = identity_folders(people, min_images=2, max_images=2)
    assert images.names == ["s1", "s2"] and images.labels.tolist() == [0, 0, 1, 1]


def test_one_photo_per_person_gives_every_image_its_own_label(people):
    images = one_photo_per_person(people)
    assert len(images) == 6 and np.unique(images.labels).size == 6
    assert images.names[0] == "s1/1.pgm"
    assert load_labelled_images(people, one_photo=True).labels.tolist() == images.labels.tolist()


def test_subset_and_people(people):
    images = identity_folders(people)
    assert images.people([1]).labels.tolist() == [1, 1]
    assert images.subset([0, 5]).paths == [images.paths[0], images.paths[5]]


def test_missing_or_empty_folder_is_an_error(tmp_path):
    with pytest.raises(EmbedkitError, match="not found"):
        identity_folders(tmp_path / "nope")
    with pytest.raises(EmbedkitError, match="no identity folders"):
        identity_folders(tmp_path)


def test_byte_identical_copies_are_dropped(tmp_path):
    import shutil

    from embedkit.data.folders import drop_duplicates, one_photo_per_person

    att = Path(__file__).resolve().parents[2] / ".." / "shared" / "faces" / "att"
    if not att.is_dir():
        pytest.skip("AT&T faces not available")
    for k in (1, 2, 3):
        shutil.copy(att / "s1" / f"{k}.pgm", tmp_path / f"a{k}.pgm")
    shutil.copy(att / "s1" / "1.pgm", tmp_path / "z_copy.pgm")  # same bytes, another name
    images = one_photo_per_person(tmp_path)
    kept, dropped = drop_duplicates(images)
    assert len(images) == 4 and len(kept) == 3
    assert dropped == [{"path": str(tmp_path / "z_copy.pgm"), "same_as": str(tmp_path / "a1.pgm")}]
