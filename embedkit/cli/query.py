import click

from embedkit.cli.common import emit, encoder_options, html_option, make_pipeline, report_errors, write_page
from embedkit.cli.index import index_option, open_index


def person_text(person) -> str:
    if not person:
        return ""
    return f" <{person['name']}>" if person.get("name") else f" <person {person['person_id']}>"


@click.command("query")
@click.argument("image", type=click.Path())
@index_option
@encoder_options
@click.option("-k", "--top", "k", default=5, show_default=True, type=click.IntRange(1, 1000),
              help="Matches per face.")
@click.option("--all", "all_matches", is_flag=True,
              help="Every stored face at or above the same-person threshold, not a top k.")
@click.option("--threshold", type=float, default=None,
              help="Same-person cosine threshold (default: the one calibrated for the index's model and faces).")
@click.option("--include-low-quality", is_flag=True, help="With --all: also faces below the quality settings.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@html_option
@report_errors
def command(image, index_dir, k, all_matches, threshold, include_low_quality, as_json, html, **options):
    """Find the stored faces nearest to each face in IMAGE."""
    from embedkit.search import query_image

    with open_index(index_dir, create=False) as index:
        pipeline, _ = make_pipeline(options, index.source)
        faces = query_image(index, pipeline, image, k, all_matches=all_matches, threshold=threshold,
                            include_low_quality=include_low_quality)
    if html:
        from embedkit.server.pages import query_page

        write_page(html, query_page(image, faces), as_json)
    if as_json:
        emit(True, faces)
        return
    if not faces:
        click.echo(f"{image}: no face found")
        return
    lines = []
    for face in faces:
        x, y, w, h = face["box"]
        who = "unknown" if face["unknown"] else (person_text(face["person"]).strip() or "matches")
        note = "" if face["calibrated"] else ", uncalibrated"
        lines.append(f"face {face['face_no']} at ({x:.0f}, {y:.0f}, {w:.0f}x{h:.0f}): {who} "
                     f"(threshold {face['threshold']:.3f}{note})")
        for rank, match in enumerate(face["matches"], start=1):
            label = f" [{match['label']}]" if match.get("label") else ""
            verdict = "same" if match["same"] else "    "
            lines.append(f"  {rank}. {match['score']:.3f} {verdict} {match['path']}{label}"
                         f"{person_text(match['person'])}")
    click.echo("\n".join(lines))
