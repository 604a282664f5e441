"""The web app over HTTP (Starlette's test client): pages, images and everything it must refuse."""

from __future__ import annotations

import re

import pytest

import starlette  # noqa: E402,F401  (the test extra installs the server; never skipped)
import multipart  # noqa: E402,F401
from starlette.testclient import TestClient  # noqa: E402

BASE = "http://127.0.0.1:8765"


def client(app, **kwargs) -> TestClient:
    return TestClient(app, base_url=BASE, raise_server_exceptions=False, **kwargs)


def token_of(page: str) -> str:
    return re.search(r'name="embedkit-token" content="([^"]+)"', page).group(1)


def upload(path, name=None):
    return (name or path.name, path.read_bytes(), "application/octet-stream")


def test_search_finds_the_right_person_and_serves_their_faces(make_app, att_dir):
    app, index = make_app()
    http = client(app)
    home = http.get("/")
    assert home.status_code == 200 and "90 faces in 90 photos" in home.text
    assert "default-src 'none'" in home.headers["content-security-policy"]
    token = token_of(http.get("/search").text)
    page = http.post("/search", data={"token": token}, files={"photo": upload(att_dir / "s3" / "10.pgm")})
    assert page.status_code == 200, page.text
    first = re.search(r'<li class="match (same|different)">.*?<div class="who">([^<]+)</div>', page.text, re.S)
    assert first.groups() == ("same", "s3")
    assert "data:image/jpeg;base64," in page.text  # the searched photo, inline: never stored by the server
    face_ids = [int(i) for i in re.findall(r'src="/image/face/(\d+)"', page.text)]
    assert len(face_ids) == 5
    image = http.get(f"/image/face/{face_ids[0]}")
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert image.content[:2] == b"\xff\xd8"
    # The photo page of the best match: the photo, its face, who it is.
    photo_id = re.search(r'href="/photo/([0-9a-f]{64})"', page.text).group(1)
    photo = http.get(f"/photo/{photo_id}")
    assert photo.status_code == 200 and '<span class="who">1. s3</span>' in photo.text
    assert http.get(f"/image/photo/{photo_id}").content[:2] == b"\xff\xd8"


def test_compare_gives_verdict_and_place_among_strangers(make_app, att_dir):
    app, _ = make_app()
    http = client(app)
    token = token_of(http.get("/compare").text)
    same = http.post("/compare", data={"token": token},
                     files={"photo_a": upload(att_dir / "s5" / "1.pgm"), "photo_b": upload(att_dir / "s5" / "2.pgm")})
    assert same.status_code == 200 and "Same person" in same.text
    assert "of pairs of strangers" in same.text and "LFW" in same.text
    other = http.post("/compare", data={"token": token},
                      files={"photo_a": upload(att_dir / "s5" / "1.pgm"), "photo_b": upload(att_dir / "s7" / "1.pgm")})
    assert other.status_code == 200 and "Different people" in other.text


@pytest.mark.parametrize("url", [
    "/image/photo/../../../../etc/passwd",
    "/image/photo/..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/image/photo/%2e%2e/%2e%2e/etc/passwd",
    "/photo/..%2f..%2fetc%2fpasswd",
    "/static/../../../../etc/passwd",
    "/static/..%2f..%2fapp.py",
    "/static/%2e%2e/app.py",
    "/image/face/..%2f1",
    "/image/face/-1",
    "/image/face/abc",
    "/image/face/99999999",
    "/photo/" + "0" * 64,
    "/image/photo/" + "f" * 64,
    "/photo/DROP TABLE faces",
    "/person/../etc",
])
def test_paths_and_unknown_ids_are_refused(make_app, url):
    app, _ = make_app()
    response = client(app).get(url)
    assert 400 <= response.status_code < 500, (url, response.status_code)
    assert "root:" not in response.text and "Traceback" not in response.text
    assert "import" not in response.text  # no source file served
    assert len(response.text.strip().splitlines()) <= 1


def test_bad_uploads_are_refused_with_one_line(make_app, att_dir, tmp_path):
    app, index = make_app(max_upload_bytes=30_000)
    http = client(app)
    token = token_of(http.get("/search").text)
    before = index.stats()
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff\xd8" + b"0" * 40_000)
    response = http.post("/search", data={"token": token}, files={"photo": upload(big)})
    assert response.status_code == 413 and "too large" in response.text
    text = tmp_path / "notes.txt"
    text.write_text("not a photo\n")
    response = http.post("/search", data={"token": token}, files={"photo": upload(text, "notes\x1b[31m.jpg")})
    assert response.status_code == 400
    message = re.search(r'<p class="error" role="alert">([^<]*)</p>', response.text).group(1)
    assert message == "notes\\x1b[31m.jpg: not an image file, or an image format that cannot be read"
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    response = http.post("/search", data={"token": token}, files={"photo": upload(empty)})
    assert response.status_code == 400 and "empty.png: empty file" in response.text
    response = http.post("/search", data={"token": token})
    assert response.status_code == 400 and "no photo given" in response.text
    response = http.post("/search", content=b"x" * 10, headers={"content-type": "multipart/form-data; boundary=zz"})
    assert response.status_code in (400, 403)
    assert index.stats() == before


def test_posts_need_the_session_token_and_our_own_origin(make_app, att_dir):
    app, index = make_app()
    http = client(app)
    token = token_of(http.get("/search").text)
    files = {"photo": upload(att_dir / "s1" / "10.pgm")}
    assert http.post("/search", files=files).status_code == 403
    assert http.post("/search", data={"token": "guess"}, files=files).status_code == 403
    foreign = http.post("/search", data={"token": token}, files=files, headers={"origin": "https://evil.example"})
    assert foreign.status_code == 403 and "another site" in foreign.text
    assert http.post("/search", data={"token": token}, files=files, headers={"origin": BASE}).status_code == 200
    # Another run of the app has another token.
    other, _ = make_app()
    assert token_of(client(other).get("/").text) != token


def test_other_host_names_are_refused(make_app):
    app, _ = make_app()
    http = TestClient(app, base_url="http://evil.example:8765", raise_server_exceptions=False)
    assert http.get("/").status_code == 400


def test_serving_beyond_this_machine_needs_the_access_token(make_app):
    with pytest.raises(ValueError):
        make_app(host="0.0.0.0")
    app, _ = make_app(host="0.0.0.0", access_token="s3cret-token")
    http = TestClient(app, base_url="http://192.0.2.7:8765", raise_server_exceptions=False)
    assert http.get("/").status_code == 401
    assert http.get("/image/face/1").status_code == 401
    assert http.get("/?access=wrong").status_code == 401
    entry = http.get("/search?access=s3cret-token", follow_redirects=False)
    assert entry.status_code == 303 and entry.headers["location"] == "/search"
    assert http.get("/").status_code == 200  # the cookie carries the token from now on


def people_now(index_dir):
    from embedkit.index import FaceIndex
    from embedkit.people import list_people

    with FaceIndex.open(index_dir) as index:
        return list_people(index, samples=0)["people"]


def test_people_grid_and_corrections_are_stored_like_the_people_commands(make_app, people_index_dir):
    from embedkit.index import FaceIndex
    from embedkit.people import get_person

    app, _ = make_app(people_index_dir)
    http = client(app)
    grid = http.get("/")
    before = people_now(people_index_dir)
    assert len(before) >= 8 and grid.text.count('<li class="person">') == len(before)
    token = token_of(grid.text)
    first, second = before[0]["person_id"], before[1]["person_id"]
    renamed = http.post(f"/person/{first}/name", data={"token": token, "name": "Ada Lovelace"})
    assert renamed.status_code == 200 and '<h1 id="person-name">Ada Lovelace</h1>' in renamed.text
    assert "Ada Lovelace" in http.get("/").text
    with FaceIndex.open(people_index_dir) as index:
        ada = get_person(index, "Ada Lovelace")
    assert ada["person_id"] == first
    face = ada["faces"][0]["face_id"]
    moved = http.post(f"/face/{face}/move", data={"token": token, "to": "new", "back": first})
    assert moved.status_code == 200
    with FaceIndex.open(people_index_dir) as index:
        assert face not in [f["face_id"] for f in get_person(index, first)["faces"]]
    other = ada["faces"][1]["face_id"]
    assert http.post(f"/face/{other}/reject", data={"token": token, "person": first}).status_code == 200
    merged = http.post(f"/person/{first}/merge", data={"token": token, "other": second})
    assert merged.status_code == 200
    with FaceIndex.open(people_index_dir) as index:
        after = get_person(index, first)
    assert after["name"] == "Ada Lovelace"
    assert after["n_faces"] == ada["n_faces"] - 2 + before[1]["n_faces"]
    assert other not in [f["face_id"] for f in after["faces"]]


def test_people_writes_without_the_token_or_to_unknown_ids_change_nothing(make_app, people_index_dir):
    app, _ = make_app(people_index_dir)
    http = client(app)
    token = token_of(http.get("/").text)
    before = people_now(people_index_dir)
    pid = before[0]["person_id"]
    refused = [
        http.post(f"/person/{pid}/name", data={"name": "Mallory"}),
        http.post(f"/person/{pid}/name", data={"name": "Mallory", "token": "forged"}),
        http.post(f"/person/{pid}/name", data={"name": "Mallory", "token": token},
                  headers={"origin": "http://evil.example"}),
        http.post(f"/person/{pid}/name", data={"name": "", "token": token}),
        http.post(f"/person/{pid}/name", data={"name": "bad\x07name", "token": token}),
        http.post("/person/999999/name", data={"name": "Nobody", "token": token}),
        http.post(f"/person/{pid}/merge", data={"other": "999999", "token": token}),
        http.post(f"/person/{pid}/merge", data={"other": "../1", "token": token}),
        http.post("/face/999999/move", data={"to": "new", "back": pid, "token": token}),
        http.post("/face/1/move", data={"to": "Robert'); DROP TABLE people;--", "back": pid, "token": token}),
        http.post("/face/1/reject", data={"person": "999999", "token": token}),
        http.post("/face/1/reject", data={"person": pid}),
        http.post("/cluster", data={}),
        http.get(f"/person/{pid}/name"),
    ]
    for response in refused:
        assert 400 <= response.status_code < 500, response.text
        assert "Traceback" not in response.text and len(response.text.strip().splitlines()) <= 1
    assert http.get("/person/999999").status_code == 404
    assert people_now(people_index_dir) == before
