"""Self-contained HTML pages (``query --html``, ``people --html``): one file, pictures inline.

They use the web app's templates and stylesheet, with every picture a
``data:`` URI, no script and no link to anything: a file to open anywhere
or send to someone.
"""

from __future__ import annotations

import logging
import os

from embedkit.errors import EmbedkitError
from embedkit.faces.io import read_image
from embedkit.server.render import render, stylesheet
from embedkit.textsafe import printable
from embedkit.server.thumbnails import Thumbnails, data_uri, encode_jpeg

logger = logging.getLogger(__name__)

PHOTO_SIDE = 800
MISSING_PICTURE = "data:,"


def _inline_faces(thumbnails: Thumbnails):
    def face_src(face: dict) -> str:
        try:
            return data_uri(thumbnails.face(face["path"], face["sha256"], face["face_no"], face["box"]))
        except (EmbedkitError, KeyError) as exc:
            logger.warning("no thumbnail for face %s (%s)", face.get("face_id"), exc)
            return MISSING_PICTURE
    return face_src


def query_page(photo_path, faces: list[dict], thumbnails: Thumbnails | None = None) -> str:
    """The answer of :func:`embedkit.search.query_image` for the photo at ``photo_path``, as one HTML page."""
    jpeg, (width, height) = encode_jpeg(read_image(photo_path), PHOTO_SIDE)
    name = printable(os.path.basename(str(photo_path)))
    result = {"name": name, "picture": {"src": data_uri(jpeg), "width": width, "height": height}, "faces": faces}
    return render("page_query.html", standalone=True, css=stylesheet(), token="", result=result,
                  face_src=_inline_faces(thumbnails or Thumbnails()))


def people_page(index, samples: int = 8, thumbnails: Thumbnails | None = None) -> str:
    """Everyone in ``index`` (names, counts, a few faces each) as one HTML page."""
    from embedkit.people import list_people

    listed = list_people(index, samples=samples)
    sha_of = {f["face_id"]: f for f in index.store.describe_faces(
        [face["face_id"] for person in listed["people"] for face in person["faces"]]).values()}
    for person in listed["people"]:
        person["faces"] = [sha_of.get(face["face_id"], face) for face in person["faces"]]
    return render("page_people.html", standalone=True, css=stylesheet(), token="", listed=listed,
                  index=printable(index.folder.name), face_src=_inline_faces(thumbnails or Thumbnails()))
