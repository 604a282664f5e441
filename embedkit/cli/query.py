import click

from embedkit.cli.common import emit, encoder_options, make_pipeline, report_errors
from embedkit.cli.index import index_option, open_index
from embedkit.textsafe import printable


@click.command("query")
@click.argument("image", type=click.Path())
@index_option
@encoder_options
@click.option("-k", "--top", "k", default=5, show_default=True, type=click.IntRange(1, 1000),
              help="Matches per face.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@report_errors
def command(image, index_dir, k, as_json, **options):
    """Find the stored faces nearest to each face in IMAGE."""
    from embedkit.search import query_image

    with open_index(index_dir, create=False) as index:
        pipeline, _ = make_pipeline(options, index.source)
        faces = query_image(index, pipeline, image, k)
    if as_json:
        emit(True, faces)
        return
    if not faces:
        click.echo(f"{printable(image)}: no face found")
        return
    lines = []
    for face in faces:
        x, y, w, h = face["box"]
        lines.append(f"face {face['face_no']} at ({x:.0f}, {y:.0f}, {w:.0f}x{h:.0f}):")
        for rank, match in enumerate(face["matches"], start=1):
            label = f" [{printable(match['label'])}]" if match.get("label") else ""
            lines.append(f"  {rank}. {match['score']:.3f}  {printable(match['path'])}{label}")
    click.echo("\n".join(lines))
