import click

from embedkit.cli.common import emit, report_errors
from embedkit.textsafe import printable


@click.group("weights")
def command():
    """Fetch and inspect pretrained weights."""


@command.command("pull")
@click.argument("backbone", default="facenet")
@report_errors
def pull(backbone):
    """Fetch BACKBONE's pinned weights into the cache and verify them."""
    from embedkit.backbones.facenet import FACENET_WEIGHTS, _facenet512_weights
    from embedkit.backbones.weights import ensure_weights
    from embedkit.errors import UnknownNameError

    if backbone == "facenet":
        path = ensure_weights(FACENET_WEIGHTS)
    elif backbone == "facenet512":
        path = _facenet512_weights()
    else:
        raise UnknownNameError(f"no pinned weights for {backbone!r}; weights can be pulled for: facenet, facenet512 "
                               f"(vgg16 uses Keras' own download on first use)")
    click.echo(printable(f"{backbone}: {path}"))


@command.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_weights(as_json):
    """Show where weights are cached and whether they are present."""
    from embedkit import paths
    from embedkit.backbones.facenet import FACENET_WEIGHTS
    from embedkit.backbones.weights import is_verified

    rows = [{"backbone": "facenet", "path": str(FACENET_WEIGHTS.cached_path),
             "present": is_verified(FACENET_WEIGHTS, FACENET_WEIGHTS.cached_path),
             "sha256": FACENET_WEIGHTS.sha256}]
    emit(as_json, {"weights_dir": str(paths.weights_dir()), "weights": rows},
         "\n".join(printable(f"{r['backbone']}: {'present' if r['present'] else 'missing'} at {r['path']}")
                   for r in rows))
