import click

from embedkit.cli.common import encoder_options, make_pipeline, report_errors
from embedkit.cli.index import index_option, open_index


@click.command("serve")
@index_option
@encoder_options
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Any other than this machine's own needs the access token printed at start.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option("--max-upload-mb", default=20, show_default=True, type=click.IntRange(1, 1024),
              help="Largest photo that may be uploaded.")
@report_errors
def command(index_dir, host, port, max_upload_mb, **options):
    """A web app over an index: people, search by photo, compare two photos."""
    try:
        import multipart  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn
    except ImportError:
        from embedkit.server import INSTALL_HINT

        raise click.ClickException(INSTALL_HINT) from None
    import secrets

    from embedkit import paths
    from embedkit.server.app import create_app, is_local, warm_up
    from embedkit.server.thumbnails import Thumbnails

    with open_index(index_dir, create=False) as index:
        pipeline, _ = make_pipeline(options, index.source)
        index.check_compatible(pipeline)
        warm_up(index, pipeline)
        token = None if is_local(host) else secrets.token_urlsafe(24)
        app = create_app(index, pipeline, host=host, access_token=token,
                         thumbnails=Thumbnails(paths.cache_dir() / "thumbnails"),
                         max_upload_bytes=max_upload_mb * 2**20)
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"embedkit: serving {index.folder} on http://{shown}:{port}/ (Ctrl+C to stop)")
        if token:
            click.echo(f"listening on {host}: other machines can reach this server. Each browser needs the "
                       f"access token once: http://{shown}:{port}/?access={token}")
        uvicorn.run(app, host=host, port=port, log_level="warning")
