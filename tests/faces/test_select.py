"""Which face of a photo: the subject (compare, evaluate, finetune) and the main face (index labels, people)."""

import numpy as np

from embedkit.faces import Face
from embedkit.faces.select import main_face, subject_face


def _face(no, box, image_size=(400, 300)):
    return Face(path="group.jpg", face_no=no, box=box, score=0.9, crop=np.zeros((4, 4, 3), np.uint8),
                image_size=image_size)


def test_a_small_bystander_at_the_centre_is_the_subject_but_never_the_main_face():
    faces = [_face(0, (10, 40, 120, 120)), _face(1, (185, 135, 30, 30))]  # largest first
    assert subject_face(faces, "group.jpg") == 1
    assert main_face(faces) == 0


def test_of_two_faces_of_a_size_the_more_central_is_both_rules_answer():
    faces = [_face(0, (0, 0, 100, 100)), _face(1, (160, 110, 90, 90))]
    assert subject_face(faces, "group.jpg") == 1
    assert main_face(faces) == 1


def test_one_face_or_no_image_size_gives_the_largest():
    assert main_face([_face(0, (0, 0, 50, 50))]) == 0
    faces = [_face(0, (0, 0, 100, 100), None), _face(1, (150, 100, 90, 90), None)]
    assert main_face(faces) == 0
