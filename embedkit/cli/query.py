import click

from embedkit.cli.common import (emit, encoder_options, html_option, json_requested, make_pipeline,
                                 report_errors, report_problem, require_files, write_page)
from embedkit.cli.index import index_option, open_index
from embedkit.textsafe import printable


def person_text(person) -> str:
    if not person:
        return ""
    return f" <{printable(person['name'])}>" if person.get("name") else f" <person {person['person_id']}>"


@click.command("query")
@click.argument("images", nargs=-1, required=True, type=click.Path())
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
def command(images, index_dir, k, all_matches, threshold, include_low_quality, as_json, html, **options):
    """Find the stored faces nearest to each face in IMAGES (image files or folders of images).

    Exit code 1 if an image could not be read (the others are still answered).
    """
    from embedkit.errors import EmbedkitError
    from embedkit.search import query_images

    require_files(images)
    paths = expand_images(images)
    if html and len(paths) != 1:
        raise click.UsageError("--html takes one IMAGE")
    with open_index(index_dir, create=False) as index:
        pipeline, _ = make_pipeline(options, index.source, job="bulk" if len(paths) > 8 else "single")
        answers = list(query_images(index, pipeline, paths, k, all_matches=all_matches, threshold=threshold,
                                    include_low_quality=include_low_quality))
        meta = {"index": str(index.folder), "model_id": pipeline.encoder.model_id, "k": None if all_matches else k}
    if html:
        from embedkit.server.pages import query_page

        answer = answers[0]
        if answer["error"]:
            raise EmbedkitError(f"{printable(answer['path'])}: {printable(answer['error'])}")
        write_page(html, query_page(answer["path"], answer["faces"]), as_json)
    failed = [a for a in answers if a["error"]]
    emit(as_json, {**meta, "results": answers}, _text(answers))
    for answer in failed:
        report_problem(f"{printable(answer['path'])}: {printable(answer['error'])}", as_json)
    if failed:
        raise SystemExit(1)


def expand_images(items) -> list[str]:
    """Image files given directly, plus the images under each folder given (sorted)."""
    from pathlib import Path

    from embedkit.errors import EmbedkitError
    from embedkit.index.scan import walk_images

    paths = []
    for item in items:
        if Path(item).is_dir():
            problems = []
            found = [str(p) for p in walk_images(Path(item), problems)]
            for problem in problems:
                report_problem(f"{printable(problem.path)}: {printable(problem.reason)}", json_requested())
            if not found:
                raise EmbedkitError(f"{printable(item)}: is a directory with no images in it")
            paths.extend(found)
        else:
            paths.append(str(item))
    return paths


def _text(answers) -> str:
    lines = []
    for answer in answers:
        if answer["error"]:
            continue
        if len(answers) > 1:
            lines.append(f"{printable(answer['path'])}:")
        if not answer["faces"]:
            lines.append(f"{printable(answer['path'])}: no face found")
        for face in answer["faces"]:
            x, y, w, h = face["box"]
            who = "unknown" if face["unknown"] else (person_text(face["person"]).strip() or "matches")
            note = "" if face["calibrated"] else ", uncalibrated"
            lines.append(f"face {face['face_no']} at ({x:.0f}, {y:.0f}, {w:.0f}x{h:.0f}): {who} "
                         f"(threshold {face['threshold']:.3f}{note})")
            for rank, match in enumerate(face["matches"], start=1):
                label = f" [{printable(match['label'])}]" if match.get("label") else ""
                verdict = "same" if match["same"] else "    "
                lines.append(f"  {rank}. {match['score']:.3f} {verdict} {printable(match['path'])}{label}"
                             f"{person_text(match['person'])}")
    return "\n".join(lines)
