"""People: the index's faces grouped into persons, with the user's names and corrections.

Corrections are user data: they live in tables of their own in the index's
SQLite database (see :mod:`embedkit.people.store`), never in FAISS, and
survive re-indexing. Every function takes an open
:class:`embedkit.index.FaceIndex`; ``person`` arguments take a person id or a
name. Errors a user can act on raise :class:`embedkit.errors.EmbedkitError`.

The API (stable; new arguments are only ever added with defaults)::

    cluster(index, threshold=None, min_faces=2, include_low_quality=False, relative=0.8, relative_min=4)
        -> ClusterReport
        Group faces that belong to no one yet: they join existing people or form new ones
        (at least ``min_faces`` faces); never undoes what the user said. ``.to_dict()`` for JSON.
    list_people(index, samples=4, all_faces=False) -> dict
        {"people": [{"person_id", "name", "n_faces", "faces": [{"face_id", "path", "paths", "box",
        "detector_score"}]}], "unassigned": N, "low_quality": M}, largest first.
    get_person(index, person) -> dict            one person with all their faces
    find_person(index, person) -> dict           {"person_id", "name", "n_photos", "photos": [{"path", "paths",
                                                 "face_id", "box"}]}
    persons_of(index, face_ids) -> dict          {face_id: {"person_id", "name"}}
    name_person(index, person, name) -> dict     {"person_id", "name", "n_faces"}
    merge_people(index, [person, ...]) -> dict   into the first: {"person_id", "name", "merged", "n_faces"}
    move_faces(index, face_ids, to) -> dict      ``to`` a person or "new": {"person_id", "name", "moved", "n_faces"}
    reject_faces(index, face_ids, person) -> dict  never rejoin that person: {"person_id", "name", "rejected",
                                                 "removed", "n_faces"}
    index_threshold(index) -> Threshold          the same-person threshold for the index's model and face setting
"""

from embedkit.people.people import (
    MIN_FACES,
    NEW,
    ClusterReport,
    cluster,
    find_person,
    get_person,
    index_threshold,
    list_people,
    merge_people,
    move_faces,
    name_person,
    persons_of,
    reject_faces,
)
from embedkit.people.quality import Quality, get_quality

__all__ = [
    "MIN_FACES", "NEW", "ClusterReport", "Quality", "cluster", "find_person", "get_person", "get_quality",
    "index_threshold", "list_people", "merge_people", "move_faces", "name_person", "persons_of", "reject_faces",
]
