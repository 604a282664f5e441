"""``embedkit serve``: the Starlette app, its security and its shared state.

Security, since the app holds someone's photo library:

* it answers only to the host names it was started for (no DNS rebinding);
* started for another host than this machine, every request needs the
  access token printed at start (once given, a cookie carries it);
* every POST needs the per-run session token that the app's own pages carry,
  and, when the browser sends one, an ``Origin`` of the app itself, so a page
  from another site can neither rename people nor upload;
* bodies larger than the upload limit are refused before they are read;
* images are served by face or photo id, only for files in the index; no path
  is taken from a URL or form;
* errors are one-line 4xx answers, never a traceback.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
from dataclasses import dataclass, field
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from embedkit.index import FaceIndex
from embedkit.pipeline import FacePipeline
from embedkit.server.render import environment, printable
from embedkit.server.thumbnails import Thumbnails

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
MAX_UPLOAD_BYTES = 20 * 2**20
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
ACCESS_COOKIE = "embedkit_access"
TOKEN_FIELD = "token"
CONTENT_SECURITY_POLICY = ("default-src 'none'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                           "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


@dataclass
class ServerState:
    """What every request shares: the open index, the loaded model, the tokens.

    ``lock`` serialises use of the index and the model (one SQLite connection,
    one TensorFlow graph).
    """

    index: FaceIndex
    pipeline: FacePipeline
    thumbnails: Thumbnails
    session_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    access_token: str | None = None
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    matches: int = 5
    lock: threading.Lock = field(default_factory=threading.Lock)

    def token_ok(self, given) -> bool:
        return isinstance(given, str) and hmac.compare_digest(given.encode(), self.session_token.encode())


def is_local(host: str) -> bool:
    return host in LOCAL_HOSTS


def create_app(index: FaceIndex, pipeline: FacePipeline, *, host: str = DEFAULT_HOST,
               access_token: str | None = None, thumbnails: Thumbnails | None = None,
               max_upload_bytes: int = MAX_UPLOAD_BYTES, matches: int = 5) -> Starlette:
    """The web app over an open ``index``, searching with ``pipeline`` (loaded once).

    ``host`` is the address the app is served on: other host names are
    refused. Pass an ``access_token`` when it is not this machine only.
    """
    from embedkit.server import routes

    if not is_local(host) and not access_token:
        raise ValueError(f"serving on {host} needs an access token")
    state = ServerState(index=index, pipeline=pipeline, thumbnails=thumbnails or Thumbnails(),
                        access_token=access_token, max_upload_bytes=max_upload_bytes, matches=matches)
    allowed = ["*"] if host in ("0.0.0.0", "::") else sorted({*LOCAL_HOSTS, host})
    middleware = [
        Middleware(TrustedHostMiddleware, allowed_hosts=allowed),
        Middleware(BaseHTTPMiddleware, dispatch=_guard),
    ]
    app = Starlette(
        routes=[*routes.ROUTES, Mount("/static", StaticFiles(packages=[("embedkit.server", "static")]),
                                      name="static")],
        middleware=middleware,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    app.state.embedkit = state
    app.state.templates = Jinja2Templates(env=environment())
    return app


async def _guard(request, call_next) -> Response:
    """Access token, request size and origin checks; security headers on every answer."""
    state: ServerState = request.app.state.embedkit
    if state.access_token is not None:
        given = request.query_params.get("access")
        if given is not None:
            if not hmac.compare_digest(given.encode(), state.access_token.encode()):
                return _headers(PlainTextResponse("wrong access token", 401))
            rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "access"])
            response = RedirectResponse(request.url.path + (f"?{rest}" if rest else ""), 303)
            response.set_cookie(ACCESS_COOKIE, state.access_token, httponly=True, samesite="strict")
            return _headers(response)
        cookie = request.cookies.get(ACCESS_COOKIE, "")
        if not hmac.compare_digest(cookie.encode(), state.access_token.encode()):
            return _headers(PlainTextResponse(
                "access token needed: open the address with ?access=TOKEN printed when the server started", 401))
    if request.method not in ("GET", "HEAD"):
        length = request.headers.get("content-length")
        if length is None or not length.isdigit():
            return _headers(PlainTextResponse("a request body needs a Content-Length", 411))
        if int(length) > state.max_upload_bytes:
            return _headers(PlainTextResponse(
                f"upload too large ({int(length) / 2**20:.1f} MiB; the limit is "
                f"{state.max_upload_bytes / 2**20:.0f} MiB)", 413))
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            return _headers(PlainTextResponse(f"refused: a request from another site ({printable(origin)})", 403))
    return _headers(await call_next(request))


def _headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # "same-origin": Chromium sends "Origin: null" on our own form posts under "no-referrer".
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


async def _http_error(request, exc: HTTPException) -> Response:
    return PlainTextResponse(printable(exc.detail), exc.status_code, headers=getattr(exc, "headers", None))


async def _server_error(request, exc: Exception) -> Response:
    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return PlainTextResponse(f"internal error ({exc.__class__.__name__}); see the server's log", 500)


def warm_up(index: FaceIndex, pipeline: FacePipeline) -> None:
    """Build the encoder's compiled graph and load the vectors now, so the first search is as quick as the rest."""
    import numpy as np

    from embedkit.encoder import EAGER_MAX_FACES
    from embedkit.faces.extract import blank_crops

    pipeline.encoder.encode(blank_crops(pipeline.extractor.framings, EAGER_MAX_FACES + 1))
    if pipeline.extractor.detector is not None:
        pipeline.extractor.detector.detect(np.zeros((64, 64, 3), np.uint8))
    if index.dim:
        index.search(np.zeros((1, index.dim), np.float32), 1)
