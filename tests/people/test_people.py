"""People on a real index: AT&T faces (facenet, --no-detect) clustered, named, corrected."""

import shutil

import pytest

from embedkit import people
from embedkit.errors import EmbedkitError
from embedkit.evaluation.clustering import clustering_report
from embedkit.index import FaceIndex


def _truth_and_clusters(index):
    faces = index.store.describe_faces(index.store.face_ids())
    owners = people.persons_of(index, list(faces))
    truth = [faces[f]["label"] for f in faces]
    predicted = [owners[f]["person_id"] if f in owners else -f for f in faces]
    return truth, predicted


def _new_photos(att_dir, tmp_path, names):
    folder = tmp_path / "new"
    for name in names:
        shutil.copytree(att_dir / name, folder / name)
    return folder


def _pipeline(facenet_encoder):
    from embedkit.faces import FaceExtractor
    from embedkit.pipeline import FacePipeline

    return FacePipeline(facenet_encoder, FaceExtractor(facenet_encoder.input_size, None))


def test_att_clusters_into_its_people(copy_att_index):
    with FaceIndex.open(copy_att_index) as index:
        report = people.cluster(index)
        truth, predicted = _truth_and_clusters(index)
        listed = people.list_people(index)
    scores = clustering_report(truth, predicted)
    assert report.considered == 350 and report.low_quality == 0
    assert scores["bcubed_f"] >= 0.98 and scores["bcubed_precision"] >= 0.99, scores
    assert 35 <= len(listed["people"]) <= 38  # 35 people, a few of them split off a pair of photos
    assert listed["people"][0]["n_faces"] >= listed["people"][-1]["n_faces"]
    assert all(len(p["faces"]) <= 4 and p["faces"][0]["path"] for p in listed["people"])
    assert report.relative_ceiling is None  # no impostor reference for whole-image faces


def test_all_of_att_with_default_face_settings(att_dir, facenet_encoder, tmp_path):
    """All 40 AT&T people, indexed as `embedkit index` does by default (YuNet, alignment)."""
    from embedkit.cli.common import pipeline_source
    from embedkit.evaluation.reference import packaged_reference
    from embedkit.faces import FaceExtractor
    from embedkit.pipeline import FacePipeline

    pipeline = FacePipeline(facenet_encoder, FaceExtractor(facenet_encoder.input_size))
    with FaceIndex.create(tmp_path / "index") as index:
        index.update(att_dir, pipeline, labels=True, source=pipeline_source({}))
        report = people.cluster(index)
        truth, predicted = _truth_and_clusters(index)
    # Tight groups merge above the score only 1 in 10,000 pairs of strangers reach (facenet's LFW table).
    assert report.relative_ceiling == pytest.approx(packaged_reference("facenet").score_at(1 - 1e-4), abs=1e-4)
    scores = clustering_report(truth, predicted)
    assert report.considered == 400 and scores["n_people"] == 40
    assert scores["bcubed_precision"] == 1.0 and scores["bcubed_f"] >= 0.99, scores
    # s31's two sessions (0.58 alike) stay apart: with facenet, LFW holds pairs of different people that are
    # more alike, no tighter and larger (benchmarks/bench_people_att.py), so no rule of this kind joins s31
    # without merging them. facenet+sface joins it (next test).
    assert 40 <= scores["n_clusters"] <= 41, scores
    # 400 faces: the score 1 in 400 pairs of strangers reach is below the merge threshold, so no floor.
    assert report.pair_floor is None


def test_all_of_att_with_facenet_sface(att_dir, tmp_path):
    """`embedkit index --backbone facenet+sface --labels` then `embedkit cluster`: AT&T's 40 people, one
    cluster each."""
    from embedkit.cli.common import pipeline_source
    from embedkit.evaluation.reference import packaged_reference
    from embedkit.pipeline import pipeline_from_source

    source = pipeline_source({"backbone": "facenet+sface"})
    pipeline = pipeline_from_source(source, job="bulk", backend="tensorflow")
    with FaceIndex.create(tmp_path / "index") as index:
        index.update(att_dir, pipeline, labels=True, source=source)
        report = people.cluster(index)
        truth, predicted = _truth_and_clusters(index)
    assert report.relative_ceiling == pytest.approx(packaged_reference("facenet+sface").score_at(1 - 1e-4),
                                                    abs=1e-4)
    scores = clustering_report(truth, predicted)
    assert report.considered == 400 and report.unassigned == 0
    assert scores["n_people"] == 40 and scores["n_clusters"] == 40, scores
    assert scores["bcubed_precision"] == 1.0 and scores["bcubed_f"] >= 0.98, scores


def test_corrections_survive_new_photos_and_a_new_cluster(copy_att_index, att_dir, tmp_path, facenet_encoder):
    with FaceIndex.open(copy_att_index) as index:
        people.cluster(index)
        by_label = {}
        for person in people.list_people(index, all_faces=True)["people"]:
            labels = {index.store.describe_faces([f["face_id"]])[f["face_id"]]["label"] for f in person["faces"]}
            by_label.setdefault(labels.pop(), []).append(person["person_id"])
        s1, s2, s3 = by_label["s1"][0], by_label["s2"][0], by_label["s3"][0]
        people.name_person(index, s1, "Ada")
        people.merge_people(index, [s2, s3])  # the user says s2 and s3 are one person
        people.name_person(index, s2, "Twins")
        rejected = people.get_person(index, "Ada")["faces"][0]["face_id"]
        people.reject_faces(index, [rejected], "ada")
        before = people.get_person(index, "Ada")["n_faces"]
        twins = people.get_person(index, "Twins")["n_faces"]

    with FaceIndex.create(copy_att_index) as index:  # new photos: the other people and more of s1
        new = _new_photos(att_dir, tmp_path, ["s36", "s37", "s38", "s39", "s40"])
        index.update(new, _pipeline(facenet_encoder), labels=True)
        report = people.cluster(index)
        assert report.considered == 50 + 1  # the new faces and the rejected one, nothing else
        ada = people.get_person(index, "Ada")
        assert ada["n_faces"] == before and rejected not in {f["face_id"] for f in ada["faces"]}
        assert people.get_person(index, "Twins")["n_faces"] == twins
        assert people.persons_of(index, [rejected]).get(rejected, {}).get("name") != "Ada"
        truth, predicted = _truth_and_clusters(index)
        new_people = {p for t, p in zip(truth, predicted) if t in ("s36", "s37", "s38", "s39", "s40")}
        assert len(new_people) >= 5


def test_move_to_new_person_and_errors(copy_att_index):
    with FaceIndex.open(copy_att_index) as index:
        people.cluster(index)
        first = people.list_people(index)["people"][0]
        face = first["faces"][0]["face_id"]
        moved = people.move_faces(index, [face], "new")
        assert moved["n_faces"] == 1 and moved["person_id"] != first["person_id"]
        people.cluster(index)  # a moved face stays where the user put it
        assert people.persons_of(index, [face])[face]["person_id"] == moved["person_id"]
        with pytest.raises(EmbedkitError, match="no person 'nobody'"):
            people.find_person(index, "nobody")
        with pytest.raises(EmbedkitError, match="no face with id 999999"):
            people.move_faces(index, [999999], first["person_id"])
        with pytest.raises(EmbedkitError, match="all digits"):
            people.name_person(index, first["person_id"], "42")
        people.name_person(index, first["person_id"], "Bo")
        with pytest.raises(EmbedkitError, match="already named"):
            people.name_person(index, moved["person_id"], "Bo")
        found = people.find_person(index, "Bo")
        assert found["n_photos"] == first["n_faces"] - 1 and all(p["path"] for p in found["photos"])


def test_two_faces_of_one_photo_never_share_a_person(lfw_dir, tmp_path, facenet_encoder):
    """A photo showing the same face twice (side by side): its two faces must be two people."""
    from PIL import Image

    from embedkit.faces import FaceExtractor
    from embedkit.pipeline import FacePipeline

    photos = tmp_path / "photos"
    photos.mkdir()
    source = sorted((lfw_dir / "Colin_Powell").iterdir())[:6]
    for path in source[1:]:
        shutil.copy(path, photos / path.name)
    face = Image.open(source[0]).convert("RGB")
    double = Image.new("RGB", (face.width * 2, face.height))
    double.paste(face, (0, 0))
    double.paste(face, (face.width, 0))
    double.save(photos / "twice.jpg")
    pipeline = FacePipeline(facenet_encoder, FaceExtractor(facenet_encoder.input_size, "yunet"))
    with FaceIndex.create(tmp_path / "index") as index:
        index.update(photos, pipeline)
        people.cluster(index, min_faces=1)
        faces = [f for f in index.store.describe_faces(index.store.face_ids()).values()
                 if f["path"].endswith("twice.jpg")]
        assert len(faces) == 2
        owners = people.persons_of(index, [f["face_id"] for f in faces])
        assert len(owners) == 2 and owners[faces[0]["face_id"]] != owners[faces[1]["face_id"]]


def test_low_quality_faces_are_left_out(copy_att_index):
    from embedkit.people.quality import set_quality

    with FaceIndex.open(copy_att_index) as index:
        set_quality(index.store, min_size=100)  # AT&T crops are 92 px: all below
        report = people.cluster(index)
        assert report.considered == 0 and report.low_quality == 350
        assert people.list_people(index)["low_quality"] == 350
        report = people.cluster(index, include_low_quality=True)
        assert report.considered == 350


def test_calibration_on_held_out_people(copy_att_index):
    from embedkit.calibration import calibrate_vectors

    with FaceIndex.open(copy_att_index) as index:
        faces = index.store.describe_faces(index.store.face_ids())
        ids, vectors = index.store.all_vectors(index.dim)
    labels = [faces[int(i)]["label"] for i in ids]
    report = calibrate_vectors(vectors, labels, far=1e-2, folds=5)
    assert report["n_people"] == 35 and report["n_genuine"] == 35 * 45
    held = report["held_out"]
    assert held["far"] <= 2e-2 and held["tar"] > 0.95
