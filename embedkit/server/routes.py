"""The app's pages and images. Each route parses the request, calls the library, renders."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from embedkit.compare import compare_files
from embedkit.errors import EmbedkitError
from embedkit.faces.io import read_image
from embedkit import people
from embedkit.index import browse
from embedkit.search import query_image
from embedkit.server.app import TOKEN_FIELD, ServerState
from embedkit.textsafe import printable
from embedkit.server.thumbnails import data_uri, encode_jpeg

UPLOAD_SIDE = 800
IMAGE_CACHE = "private, max-age=3600"


def _state(request) -> ServerState:
    return request.app.state.embedkit


def _page(request, template: str, status: int = 200, **context):
    context.update(token=_state(request).session_token, standalone=False, face_src=_face_url)
    return request.app.state.templates.TemplateResponse(request, template, context, status_code=status)


def _run(state: ServerState, fn, *args):
    """Call the library with the index and the model to ourselves."""
    with state.lock:
        return fn(*args)


def _face_url(match: dict) -> str:
    return f"/image/face/{int(match['face_id'])}"


# -- uploads ---------------------------------------------------------------------------------------
class Upload:
    """An uploaded file saved to a private temporary file, with the name its sender gave."""

    def __init__(self, path: Path, name: str):
        self.path = path
        self.name = name

    def reword(self, message: str) -> str:
        """A library message about the temporary file, about the uploaded one instead."""
        return message.replace(str(self.path), self.name)


@contextlib.asynccontextmanager
async def _uploads(request, fields: tuple[str, ...]):
    """The form's files ``fields`` as :class:`Upload` objects; checks the session token first."""
    state = _state(request)
    try:
        form = await request.form(max_files=len(fields), max_fields=4, max_part_size=64 * 1024)
    except Exception as exc:  # python-multipart and Starlette raise several kinds
        raise HTTPException(400, f"unreadable form ({exc.__class__.__name__}: {exc})") from None
    try:
        if not state.token_ok(form.get(TOKEN_FIELD)):
            raise HTTPException(403, "refused: the form has no valid session token (reload the page)")
        with tempfile.TemporaryDirectory(prefix="embedkit-upload-") as folder:
            uploads = {}
            for number, name in enumerate(fields):
                item = form.get(name)
                if not isinstance(item, UploadFile) or not item.filename:
                    raise HTTPException(400, f"no photo given for '{name}'")
                target = Path(folder) / f"upload-{number}"
                size = 0
                with open(target, "wb") as out:
                    while chunk := await item.read(1 << 20):
                        size += len(chunk)
                        if size > state.max_upload_bytes:
                            raise HTTPException(413, f"{printable(item.filename)}: upload too large")
                        out.write(chunk)
                uploads[name] = Upload(target, printable(os.path.basename(item.filename)) or "upload")
            yield uploads
    finally:
        await form.close()


def _inline_picture(path: Path) -> dict:
    jpeg, (width, height) = encode_jpeg(read_image(path), UPLOAD_SIDE)
    return {"src": data_uri(jpeg), "width": width, "height": height}


# -- pages -----------------------------------------------------------------------------------------
def _home(state: ServerState) -> dict:
    return {"stats": state.index.stats(), "listed": people.list_people(state.index, samples=1)}


async def home(request):
    state = _state(request)
    return _page(request, "home.html", **await run_in_threadpool(_run, state, _home, state))


async def search_form(request):
    return _page(request, "search.html", result=None, error=None)


def _search(state: ServerState, upload: Upload) -> dict:
    faces = query_image(state.index, state.pipeline, upload.path, state.matches)
    return {"name": upload.name, "picture": _inline_picture(upload.path), "faces": faces}


async def search(request):
    state = _state(request)
    async with _uploads(request, ("photo",)) as uploads:
        upload = uploads["photo"]
        try:
            result = await run_in_threadpool(_run, state, _search, state, upload)
        except EmbedkitError as exc:
            return _page(request, "search.html", 400, result=None, error=upload.reword(str(exc)))
    return _page(request, "search.html", result=result, error=None)


async def compare_form(request):
    return _page(request, "compare.html", result=None, error=None)


def _compare(state: ServerState, a: Upload, b: Upload) -> dict:
    comparison = compare_files(state.pipeline, a.path, b.path, store=state.index.store)
    return {"comparison": comparison, "names": [a.name, b.name],
            "pictures": [_inline_picture(a.path), _inline_picture(b.path)]}


async def compare(request):
    state = _state(request)
    async with _uploads(request, ("photo_a", "photo_b")) as uploads:
        a, b = uploads["photo_a"], uploads["photo_b"]
        try:
            result = await run_in_threadpool(_run, state, _compare, state, a, b)
        except EmbedkitError as exc:
            return _page(request, "compare.html", 400, result=None, error=b.reword(a.reword(str(exc))))
    return _page(request, "compare.html", result=result, error=None)


async def _stored_photo(request) -> dict:
    state = _state(request)
    photo = await run_in_threadpool(_run, state, browse.photo, state.index, request.path_params["photo_id"])
    if photo is None:
        raise HTTPException(404, "no such photo in this index")
    return photo


async def _picture(fn, *args):
    """Thumbnail bytes from ``fn``; a photo that has gone or become unreadable since indexing is a 410."""
    try:
        return await run_in_threadpool(fn, *args)
    except EmbedkitError as exc:
        raise HTTPException(410, f"the photo can no longer be read: {exc}") from None


def _jpeg(data: bytes) -> Response:
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": IMAGE_CACHE})


def _owners(state: ServerState, photo: dict) -> dict:
    owners = people.persons_of(state.index, [face["face_id"] for face in photo["faces"]])
    for face in photo["faces"]:
        face["person"] = owners.get(face["face_id"])
    return photo


async def photo_page(request):
    photo = await _stored_photo(request)
    state = _state(request)
    photo = await run_in_threadpool(_run, state, _owners, state, photo)
    _, (width, height) = await _picture(_state(request).thumbnails.photo, photo["path"], photo["photo_id"])
    return _page(request, "photo.html", photo=photo, width=width, height=height)


async def face_page(request):
    """A face's photo page (faces are linked by id; their photo's id is looked up)."""
    state = _state(request)
    face = await run_in_threadpool(_run, state, browse.face, state.index, request.path_params["face_id"])
    if face is None:
        raise HTTPException(404, "no such face in this index")
    return RedirectResponse(f"/photo/{face['sha256']}", 303)


# -- people ----------------------------------------------------------------------------------------
def _person(state: ServerState, person_id: int) -> dict:
    person = people.get_person(state.index, person_id)
    others = [p for p in people.list_people(state.index, samples=0)["people"] if p["person_id"] != person_id]
    return {"person": person, "others": others}


async def person_page(request):
    state = _state(request)
    try:
        context = await run_in_threadpool(_run, state, _person, state, request.path_params["person_id"])
    except EmbedkitError:
        raise HTTPException(404, "no such person in this index") from None
    return _page(request, "person.html", **context)


async def _form(request) -> dict:
    """A posted form (no files) once its session token is checked."""
    try:
        form = await request.form(max_files=0, max_fields=8, max_part_size=4096)
    except Exception as exc:
        raise HTTPException(400, f"unreadable form ({exc.__class__.__name__}: {exc})") from None
    if not _state(request).token_ok(form.get(TOKEN_FIELD)):
        raise HTTPException(403, "refused: the form has no valid session token (reload the page)")
    return {key: value for key, value in form.items() if isinstance(value, str)}


async def _change(request, fn, *args, then: str):
    """Run a people change with the index to ourselves; then show ``then``."""
    state = _state(request)
    try:
        await run_in_threadpool(_run, state, fn, state.index, *args)
    except EmbedkitError as exc:
        raise HTTPException(400, str(exc)) from None
    return RedirectResponse(then, 303)


def _field(form: dict, name: str) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise HTTPException(400, f"the form needs '{name}'")
    return value


def _person_field(form: dict, name: str) -> int:
    value = _field(form, name)
    if not value.isdigit():
        raise HTTPException(400, f"'{name}' must be a person id")
    return int(value)


async def name_person(request):
    form, pid = await _form(request), request.path_params["person_id"]
    return await _change(request, people.name_person, pid, form.get("name", ""), then=f"/person/{pid}")


async def merge_people(request):
    form, pid = await _form(request), request.path_params["person_id"]
    return await _change(request, people.merge_people, [pid, _person_field(form, "other")], then=f"/person/{pid}")


async def move_face(request):
    form, fid = await _form(request), request.path_params["face_id"]
    to = _field(form, "to")
    if to != people.NEW and not to.isdigit():
        raise HTTPException(400, "'to' must be a person id or 'new'")
    back = _person_field(form, "back")
    return await _change(request, people.move_faces, [fid], to, then=f"/person/{back}")


async def reject_face(request):
    form, fid = await _form(request), request.path_params["face_id"]
    pid = _person_field(form, "person")
    return await _change(request, people.reject_faces, [fid], pid, then=f"/person/{pid}")


async def group_faces(request):
    await _form(request)
    return await _change(request, people.cluster, then="/")


# -- images ----------------------------------------------------------------------------------------
async def face_image(request):
    state = _state(request)
    face = await run_in_threadpool(_run, state, browse.face, state.index, request.path_params["face_id"])
    if face is None:
        raise HTTPException(404, "no such face in this index")
    return _jpeg(await _picture(state.thumbnails.face, face["path"], face["sha256"], face["face_no"], face["box"]))


async def photo_image(request):
    photo = await _stored_photo(request)
    jpeg, _ = await _picture(_state(request).thumbnails.photo, photo["path"], photo["photo_id"])
    return _jpeg(jpeg)


ROUTES = [
    Route("/", home),
    Route("/search", search_form, methods=["GET"]),
    Route("/search", search, methods=["POST"]),
    Route("/compare", compare_form, methods=["GET"]),
    Route("/compare", compare, methods=["POST"]),
    Route("/photo/{photo_id}", photo_page),
    Route("/face/{face_id:int}", face_page),
    Route("/person/{person_id:int}", person_page),
    Route("/person/{person_id:int}/name", name_person, methods=["POST"]),
    Route("/person/{person_id:int}/merge", merge_people, methods=["POST"]),
    Route("/face/{face_id:int}/move", move_face, methods=["POST"]),
    Route("/face/{face_id:int}/reject", reject_face, methods=["POST"]),
    Route("/cluster", group_faces, methods=["POST"]),
    Route("/image/face/{face_id:int}", face_image),
    Route("/image/photo/{photo_id}", photo_image),
]
