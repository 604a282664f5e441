"""The web app over an index (``embedkit serve``) and the static HTML pages.

Routes are thin: they call the library (search, compare, people) as the CLI
does and render its answers. Importing this package loads no web library;
:mod:`embedkit.server.app` needs the ``server`` extra
(``pip install 'embedkit[server]'``), the static pages only Jinja2.
"""

INSTALL_HINT = "the web app needs the server extra: pip install 'embedkit[server]'"
