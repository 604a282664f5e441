"""People in an index: clustering its faces, listing, naming, merging and correcting.

Every function takes an open :class:`~embedkit.index.FaceIndex`. Clustering is
incremental: faces that already belong to someone stay there, and only faces
that belong to no one yet are grouped, joining an existing person or forming
new ones. What the user said (names, merges, moves, rejections) is never
undone by clustering.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass

import numpy as np

from embedkit.errors import EmbedkitError, ModelError
from embedkit.people.cluster import Groups, agglomerate
from embedkit.people.quality import get_quality
from embedkit.people.store import PeopleStore
from embedkit.textsafe import printable

logger = logging.getLogger(__name__)

# Clustering merges groups whose mean pair similarity reaches the same-person
# threshold plus this margin (merging two people costs more than splitting
# one), and holds groups of RELATIVE_MIN faces or more to the relative
# condition (see embedkit.people.cluster.agglomerate). Set by hand during
# development (LFW people with >= 5 photos, AT&T); benchmarks/bench_people.py
# reports them beside the settings an identity-disjoint tuning picks.
CLUSTER_MARGIN = 0.1
RELATIVE = 0.8
RELATIVE_MIN = 4
# Two groups more alike than all but this share of pairs of strangers merge
# however tight each is (the relative condition's ceiling), where the model's
# impostor reference for the index's face setting (stranger_reference) says
# where that is (relative_ceiling).
STRANGER_SHARE = 1e-4
# And two lone faces pair up only at the score one in N pairs of strangers reach
# (N: the library's faces; see lone_pair_floor), bigger groups needing less.
# A cluster of fewer faces stays unassigned (and is tried again next time).
MIN_FACES = 2
NEW = "new"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class ClusterReport:
    """What one :func:`cluster` run did."""

    index: str
    threshold: float
    calibrated: bool
    relative_ceiling: float | None = None
    pair_floor: float | None = None
    faces: int = 0
    considered: int = 0
    joined_existing: int = 0
    new_people: int = 0
    in_new_people: int = 0
    unassigned: int = 0
    low_quality: int = 0
    people: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def cluster_threshold(index, threshold: float | None = None) -> tuple[float, bool]:
    """The similarity at which clustering merges groups, and whether it rests on a calibrated threshold.

    ``threshold`` (a same-person threshold, e.g. from ``--threshold``) overrides the index's own.
    """
    if threshold is not None:
        return float(threshold) + CLUSTER_MARGIN, True
    chosen = index_threshold(index)
    return chosen.value + CLUSTER_MARGIN, chosen.calibrated


def index_threshold(index):
    """The same-person :class:`~embedkit.calibration.Threshold` for an index's model and face setting,
    without loading the model: a calibration stored with the index, else the backbone's or model's."""
    from embedkit.calibration import Threshold, source_setting, stored_calibration
    from embedkit.encoder import UNCALIBRATED_THRESHOLD

    source = index.source
    info = index.info
    setting = source_setting(source)
    entry = stored_calibration(index.store, info.get("model_id"), setting)
    if entry:
        return Threshold(float(entry["threshold"]), True, setting, f"calibrated on {entry.get('data')}")
    thresholds = _source_thresholds(source, info)
    if setting in thresholds:
        return Threshold(thresholds[setting], True, setting, "model")
    return Threshold(UNCALIBRATED_THRESHOLD, False, setting, "default (uncalibrated)")


def relative_ceiling(reference) -> float | None:
    """The similarity above which two groups merge however tight each is: the score only
    :data:`STRANGER_SHARE` of strangers' pairs reach in ``reference`` (an impostor reference, see
    :func:`stranger_reference`); None without a reference."""
    return None if reference is None else reference.score_at(1.0 - STRANGER_SHARE)


def lone_pair_floor(reference, n_faces: int) -> float | None:
    """What two lone faces need to pair up in a library of ``n_faces`` faces: the score only one in
    ``n_faces`` pairs of strangers reach in ``reference`` (an impostor reference, see
    :func:`stranger_reference`), so a face expects about one stranger that alike in the whole
    library; None without a reference."""
    if reference is None or n_faces < 2:
        return None
    return reference.score_at(1.0 - 1.0 / n_faces)


def stranger_reference(index):
    """The impostor reference of the index's model, made with the index's face setting
    (:class:`~embedkit.evaluation.reference.ImpostorReference`), or None."""
    from embedkit.calibration import face_setting, source_setting
    from embedkit.evaluation.reference import METADATA_KEY, ImpostorReference, packaged_reference

    source, info = index.source, index.info
    try:
        if source.get("model_dir"):
            metadata = _model_config(source["model_dir"]).get("metadata", {})
            reference = ImpostorReference.from_dict(metadata[METADATA_KEY]) if METADATA_KEY in metadata else None
        elif source.get("weights", "pretrained") == "pretrained":
            reference = packaged_reference(source.get("backbone") or info.get("backbone") or "facenet")
            if reference is not None and reference.about.get("model_id") != info.get("model_id"):
                reference = None
        else:
            reference = None
    except (KeyError, TypeError, ValueError) as exc:
        logger.warning("the model's impostor reference is unreadable (%s); clustering without it", exc)
        return None
    made_with = (reference.about.get("face_setting") if reference is not None else None) or {}
    if not made_with:
        return None
    if face_setting(made_with.get("detector"), made_with.get("center_crop", 1.0)) != source_setting(source):
        return None
    return reference


def _model_config(folder) -> dict:
    """A model folder's config, checked (:func:`~embedkit.encoder.read_model_config`, no weights loaded).

    Raises :class:`~embedkit.errors.ModelError` (one line) when the folder is gone or damaged: the
    index's threshold and impostor reference come from it, and clustering at a default threshold
    instead would be a silent wrong answer."""
    from pathlib import Path

    from embedkit.encoder import read_model_config

    return read_model_config(Path(folder))


def _source_thresholds(source: dict, info: dict) -> dict[str, float]:
    """Thresholds of the model an index was built with, read from its spec or folder (no weights loaded)."""
    from embedkit.backbones import get_backbone
    from embedkit.calibration import face_setting

    if source.get("model_dir"):
        config = _model_config(source["model_dir"])
        found = {}
        metadata = config.get("metadata", {})
        try:
            extractor = metadata.get("faces", {}).get("extractor")
            if config.get("threshold") is not None and extractor:
                found[face_setting(extractor.get("detector"), extractor.get("center_crop", 1.0))] = config["threshold"]
            for entry in metadata.get("calibrations", {}).values():
                found[entry["setting"]] = float(entry["threshold"])
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{source['model_dir']}: damaged model config: its face setting or calibrations "
                             f"cannot be read ({type(exc).__name__})") from None
        return found
    if source.get("weights", "pretrained") != "pretrained":
        return {}
    try:
        return dict(get_backbone(source.get("backbone") or info.get("backbone") or "facenet").thresholds)
    except EmbedkitError:
        return {}


def cluster(index, threshold: float | None = None, min_faces: int = MIN_FACES,
            include_low_quality: bool = False, relative: float = RELATIVE,
            relative_min: int = RELATIVE_MIN) -> ClusterReport:
    """Group the index's faces that belong to no one yet into people.

    A new face joins the existing person it is most like (average similarity
    to that person's faces at or above the clustering threshold) unless a
    face of the same photo is already there or the user rejected it from that
    person; the rest form new people of at least ``min_faces`` faces. Faces
    below the index's quality settings are left out unless
    ``include_low_quality``. ``threshold`` overrides the same-person threshold;
    ``relative`` and ``relative_min`` the relative condition (0 turns it off;
    see :func:`embedkit.people.cluster.agglomerate`).
    """
    started = time.time()
    merge_at, calibrated = cluster_threshold(index, threshold)
    reference = stranger_reference(index)
    ceiling = relative_ceiling(reference) if relative else None
    people = PeopleStore(index.store)
    dim = index.dim
    report = ClusterReport(index=str(index.folder), threshold=round(merge_at, 4), calibrated=calibrated,
                           relative_ceiling=None if ceiling is None else round(ceiling, 4))
    if dim is None:
        return report
    quality = get_quality(index.store)
    with people.write():
        people.drop_empty_people()
        faces = people.faces()
        ids, vectors = index.store.all_vectors(dim)
        rejected: dict[tuple, set] = {}
        for sha, no, pid in people.rejections():
            rejected.setdefault((sha, no), set()).add(pid)
        photo_sizes: dict[str, int] = {}
        for face in faces:
            photo_sizes[face[1]] = photo_sizes.get(face[1], 0) + 1

        def tags_of(sha, no):
            tags = {("photo", sha)} if photo_sizes[sha] > 1 else set()
            tags.update(("rejected", pid) for pid in rejected.get((sha, no), ()))
            return tags

        members: dict[int, list[int]] = {}
        todo = []
        for row, (fid, sha, no, w, h, score, pid, pinned) in enumerate(faces):
            if pid is not None:
                members.setdefault(pid, []).append(row)
            elif include_low_quality or quality.good(w, h, score):
                todo.append(row)
            else:
                report.low_quality += 1
        existing = sorted(members)
        n_groups = len(existing) + len(todo)
        sums = np.zeros((n_groups, dim), np.float32)
        counts = np.zeros(n_groups)
        tags: list[frozenset] = []
        for g, pid in enumerate(existing):
            rows = members[pid]
            sums[g] = vectors[rows].sum(axis=0)
            counts[g] = len(rows)
            group_tags = {("existing",), ("rejected", pid)}
            for row in rows:
                if photo_sizes[faces[row][1]] > 1:
                    group_tags.add(("photo", faces[row][1]))
            tags.append(frozenset(group_tags))
        for row in todo:
            sums[len(tags)] = vectors[row]
            counts[len(tags)] = 1
            tags.append(frozenset(tags_of(faces[row][1], faces[row][2])))
        frozen = np.zeros(n_groups, bool)
        frozen[: len(existing)] = True
        n_library = len(faces) - report.low_quality  # every face but those below the quality settings
        floor = lone_pair_floor(reference, n_library)
        report.pair_floor = None if floor is None or floor <= merge_at else round(floor, 4)
        parent = agglomerate(Groups(sums, counts, tags, frozen), merge_at, relative, relative_min, ceiling=ceiling,
                             pair_floor=floor)

        report.faces = len(faces)
        report.considered = len(todo)
        new_groups: dict[int, list[int]] = {}
        for offset, row in enumerate(todo):
            root = int(parent[len(existing) + offset])
            if root < len(existing):
                people.assign([faces[row][1:3]], existing[root], pinned=False)
                report.joined_existing += 1
            else:
                new_groups.setdefault(root, []).append(row)
        for rows in sorted(new_groups.values(), key=len, reverse=True):
            if len(rows) < min_faces:
                report.unassigned += len(rows)
                continue
            pid = people.new_person()
            people.assign([faces[row][1:3] for row in rows], pid, pinned=False)
            report.new_people += 1
            report.in_new_people += len(rows)
        report.people = len(people.people())
    report.seconds = round(time.time() - started, 3)
    logger.info("clustered %d faces: %d joined existing people, %d in %d new people, %d unassigned",
                report.considered, report.joined_existing, report.in_new_people, report.new_people,
                report.unassigned)
    return report


# -- reading -------------------------------------------------------------------------------------

def _face_entry(described: dict) -> dict:
    return {key: described[key] for key in ("face_id", "path", "paths", "box", "detector_score")}


def list_people(index, samples: int = 4, all_faces: bool = False) -> dict:
    """Everyone in the index, largest first.

    Returns ``{"people": [{"person_id", "name", "n_faces", "faces": [{"face_id",
    "path", "paths", "box", "detector_score"}]}], "unassigned": N, "low_quality": M}``;
    ``faces`` holds ``samples`` faces (those nearest the person's mean), or
    every face with ``all_faces``.
    """
    people = PeopleStore(index.store)
    quality = get_quality(index.store)
    index.store.begin_read()
    try:
        faces = people.faces()
        names = people.people()
        by_person: dict[int, list[int]] = {}
        unassigned = low = 0
        for fid, sha, no, w, h, score, pid, pinned in faces:
            if pid is None:
                if quality.good(w, h, score):
                    unassigned += 1
                else:
                    low += 1
            else:
                by_person.setdefault(pid, []).append(fid)
        chosen = {pid: (fids if all_faces else _samples(index, fids, samples)) for pid, fids in by_person.items()}
        described = index.store.describe_faces([f for fids in chosen.values() for f in fids])
    finally:
        index.store.rollback()
    listed = []
    for pid, fids in sorted(by_person.items(), key=lambda item: (-len(item[1]), item[0])):
        listed.append({"person_id": pid, "name": names.get(pid), "n_faces": len(fids),
                       "faces": [_face_entry(described[f]) for f in chosen[pid] if f in described]})
    # Named people whose photos are all gone are still people (their name is the user's).
    for pid, name in names.items():
        if pid not in by_person and name is not None:
            listed.append({"person_id": pid, "name": name, "n_faces": 0, "faces": []})
    return {"people": listed, "unassigned": unassigned, "low_quality": low}


def _samples(index, face_ids: list[int], n: int) -> list[int]:
    if len(face_ids) <= n:
        return face_ids
    vectors = index.store.face_vectors(face_ids)
    mean = vectors.mean(axis=0)
    order = np.argsort(-(vectors @ mean), kind="stable")[:n]
    return [face_ids[i] for i in order]


def get_person(index, person) -> dict:
    """One person (id or name): ``{"person_id", "name", "n_faces", "faces": [...every face...]}``."""
    people = PeopleStore(index.store)
    pid = people.resolve(person)
    fids = people.person_face_ids(pid)
    described = index.store.describe_faces(fids)
    return {"person_id": pid, "name": people.people().get(pid), "n_faces": len(fids),
            "faces": [_face_entry(described[f]) for f in fids if f in described]}


def find_person(index, person) -> dict:
    """Every photo of a person (id or name): ``{"person_id", "name", "n_photos", "photos": [{"path",
    "paths", "face_id", "box"}]}``, sorted by path."""
    found = get_person(index, person)
    photos = sorted(({"path": f["path"], "paths": f["paths"], "face_id": f["face_id"], "box": f["box"]}
                     for f in found["faces"]), key=lambda p: (p["path"] or "", p["face_id"]))
    return {"person_id": found["person_id"], "name": found["name"], "n_photos": len(photos), "photos": photos}


def persons_of(index, face_ids) -> dict[int, dict]:
    """``{face_id: {"person_id", "name"}}`` for those of ``face_ids`` that belong to someone."""
    people = PeopleStore(index.store)
    owners = people.persons_of(face_ids)
    names = people.people() if owners else {}
    return {fid: {"person_id": pid, "name": names.get(pid)} for fid, pid in owners.items()}


# -- corrections -----------------------------------------------------------------------------------

def _check_name(name: str) -> str:
    text = (name or "").strip()
    if not text:
        raise EmbedkitError("a name cannot be empty")
    if _CONTROL.search(text):
        raise EmbedkitError(f"name '{printable(text)}' holds control characters")
    if text.isdigit():
        raise EmbedkitError(f"name {text!r} is all digits, which reads as a person id; choose another")
    if text == NEW:
        raise EmbedkitError(f"{NEW!r} is reserved (`people move --to new`); choose another name")
    return text


def name_person(index, person, name: str) -> dict:
    """Give a person (id or name) a name; returns :func:`get_person` without faces."""
    people = PeopleStore(index.store)
    text = _check_name(name)
    with people.write():
        pid = people.resolve(person)
        people.set_name(pid, text)
    return {"person_id": pid, "name": text, "n_faces": len(people.person_face_ids(pid))}


def merge_people(index, persons) -> dict:
    """Merge people (ids or names) into the first one; a nameless target takes the only name among them."""
    people = PeopleStore(index.store)
    with people.write():
        pids = list(dict.fromkeys(people.resolve(p) for p in persons))
        if len(pids) < 2:
            raise EmbedkitError("give at least two different people to merge")
        names = people.people()
        target = pids[0]
        others = [names[p] for p in pids[1:] if names[p] is not None]
        for source in pids[1:]:
            people.move_person(source, target)
        if names[target] is None and len(set(others)) == 1:
            people.set_name(target, others[0])
    return {"person_id": target, "name": people.people().get(target), "merged": pids[1:],
            "n_faces": len(people.person_face_ids(target))}


def move_faces(index, face_ids, to) -> dict:
    """Put faces into a person (id or name, or ``"new"`` for a new person); they stay there.

    Each face is also remembered as not belonging to the person it left.
    """
    people = PeopleStore(index.store)
    with people.write():
        keys = people.face_keys(face_ids)
        owners = people.persons_of(keys)
        target = people.new_person() if str(to).strip() == NEW else people.resolve(to)
        for fid, key in keys.items():
            if owners.get(fid) not in (None, target):
                people.reject([key], owners[fid])
        people.assign(keys.values(), target, pinned=True)
        people.drop_empty_people()
    return {"person_id": target, "name": people.people().get(target), "moved": sorted(keys),
            "n_faces": len(people.person_face_ids(target))}


def reject_faces(index, face_ids, person) -> dict:
    """Take faces out of a person (id or name) for good: clustering never puts them back there."""
    people = PeopleStore(index.store)
    with people.write():
        pid = people.resolve(person)
        keys = people.face_keys(face_ids)
        owners = people.persons_of(keys)
        inside = [key for fid, key in keys.items() if owners.get(fid) == pid]
        people.unassign(inside)
        people.reject(keys.values(), pid)
    return {"person_id": pid, "name": people.people().get(pid), "rejected": sorted(keys),
            "removed": len(inside), "n_faces": len(people.person_face_ids(pid))}
