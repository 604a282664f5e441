import numpy as np
import pytest

from embedkit.errors import UnknownNameError
from embedkit.faces import FaceExtractor, get_detector, read_image
from embedkit.faces.align import align_face, center_crop


@pytest.fixture
def lfw_image(lfw_dir):
    return read_image(lfw_dir / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg")


def _collage(lfw_dir):
    names = ["Aaron_Peirsol", "George_W_Bush", "Serena_Williams"]
    tiles = [read_image(lfw_dir / n / f"{n}_0001.jpg")[40:210, 40:210] for n in names]
    return np.concatenate(tiles, axis=1)


@pytest.mark.parametrize("name", ["yunet", "mtcnn"])
def test_detector_finds_the_centred_face_with_ordered_landmarks(lfw_image, name):
    faces = get_detector(name).detect(lfw_image)
    assert faces, f"{name} found no face"
    x, y, w, h = faces[0].box
    assert abs(x + w / 2 - 125) < 30 and abs(y + h / 2 - 125) < 40
    lm = faces[0].landmarks
    assert lm.shape == (5, 2)
    assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]  # eyes and mouth corners left to right
    assert lm[2, 1] > lm[:2, 1].max() and lm[3:, 1].min() > lm[2, 1] - 5  # nose below eyes, mouth below nose


def test_every_face_in_a_group_photo_is_found(lfw_dir):
    faces = get_detector("yunet").detect(_collage(lfw_dir))
    assert len(faces) == 3
    areas = [f.box[2] * f.box[3] for f in faces]
    assert areas == sorted(areas, reverse=True)


def test_unknown_detector():
    with pytest.raises(UnknownNameError, match="yunet"):
        get_detector("haar")


def test_alignment_turns_a_tilted_face_upright(lfw_image):
    # MTCNN's landmarks follow head roll closely; YuNet's int8 model
    # under-reports strong roll, which is why `--detector mtcnn` exists.
    import cv2

    det = get_detector("mtcnn")
    straight = align_face(lfw_image, det.detect(lfw_image)[0].landmarks, 160)
    turn = cv2.getRotationMatrix2D((125, 125), 25, 1.0)
    tilted_image = cv2.warpAffine(lfw_image, turn, (250, 250), borderMode=cv2.BORDER_REPLICATE)
    tilted = align_face(tilted_image, det.detect(tilted_image)[0].landmarks, 160)
    naive = center_crop(tilted_image, 160, 0.64)
    err_aligned = np.abs(straight.astype(float) - tilted).mean()
    err_naive = np.abs(straight.astype(float) - naive).mean()
    assert straight.shape == (160, 160, 3)
    assert err_aligned < err_naive / 2


def test_extractor_without_detection_uses_the_centre(lfw_image):
    faces = FaceExtractor(64, detector=None, center_crop=0.5).from_image(lfw_image, "x.jpg")
    assert len(faces) == 1 and faces[0].crop.shape == (64, 64, 3)
    assert faces[0].box == (62.5, 62.5, 125.0, 125.0)


def test_extractor_keeps_every_face_numbered(lfw_dir):
    faces = FaceExtractor(32).from_image(_collage(lfw_dir), "group.jpg")
    assert [f.face_no for f in faces] == [0, 1, 2]
    assert all(f.crop.shape == (32, 32, 3) for f in faces)
