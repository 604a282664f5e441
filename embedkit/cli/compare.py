import click

from embedkit.cli.common import emit, encoder_options, make_pipeline, report_errors, require_files

PAIR_FORMATS = ("csv", "ndjson")
PAIR_COLUMNS = ("path_a", "path_b", "score", "distance", "same", "threshold", "error")


@click.command("compare")
@click.argument("image_a", required=False, type=click.Path(dir_okay=True))
@click.argument("image_b", required=False, type=click.Path(dir_okay=True))
@click.option("--pairs", "pairs_file", default=None, type=click.Path(dir_okay=False),
              help="CSV file of pairs (two image paths per line) to compare in one run, instead of IMAGE_A IMAGE_B.")
@click.option("--format", "out_format", default=None, type=click.Choice(PAIR_FORMATS),
              help="With --pairs: output format (default csv; ndjson with --json).")
@encoder_options
@click.option("--threshold", type=float, default=None,
              help="Same-person cosine threshold for this run (default: the calibrated one).")
@click.option("--index", "index_dir", default=None, type=click.Path(file_okay=False),
              help="Use the threshold calibrated with this index (default: embedkit's own index, if any).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with --pairs: one JSON object per line).")
@report_errors
def command(image_a, image_b, pairs_file, out_format, threshold, index_dir, as_json, **options):
    """How similar are the faces in IMAGE_A and IMAGE_B?

    Exit code 1 if a photo cannot be read or has no face (with --pairs: if
    any pair could not be compared; every other pair is still printed).
    """
    from embedkit.cli.common import json_requested

    as_json = as_json or json_requested()
    if pairs_file:
        if image_a or image_b:
            raise click.UsageError("give either IMAGE_A IMAGE_B or --pairs FILE, not both")
        return _compare_pairs(pairs_file, out_format or ("ndjson" if as_json else "csv"), options, threshold,
                              index_dir)
    if not (image_a and image_b):
        raise click.UsageError("give two images (IMAGE_A IMAGE_B), or --pairs FILE")
    require_files([image_a, image_b])
    from embedkit.cli.index import calibration_store
    from embedkit.compare import compare_files

    pipeline, _ = make_pipeline(options)
    with calibration_store(index_dir) as store:
        result = compare_files(pipeline, image_a, image_b, threshold, store)
    verdict = "same person" if result.same else "different people"
    note = "" if result.calibrated else " (uncalibrated threshold)"
    emit(as_json, result.to_dict(),
         f"score {result.score:.3f} (distance {result.distance:.3f}): {verdict} at threshold "
         f"{result.threshold:.3f}{note}"
         + (f"\n{result.strangers} ({result.reference})" if result.strangers else ""))


def read_pairs(path) -> list[tuple[str, str]]:
    """Pairs from a CSV file: two paths per line; blank lines, ``#`` comments and a header are skipped."""
    import csv

    from embedkit.errors import EmbedkitError

    require_files([path])
    pairs = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            for number, row in enumerate(csv.reader(f), start=1):
                cells = [c.strip() for c in row]
                if not any(cells) or cells[0].startswith("#"):
                    continue
                if len(cells) != 2:
                    raise EmbedkitError(f"{path}: line {number} has {len(cells)} fields; expected two image paths")
                if number == 1 and cells == ["path_a", "path_b"]:
                    continue
                pairs.append((cells[0], cells[1]))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise EmbedkitError(f"{path}: cannot read pairs ({exc})") from None
    return pairs


def _compare_pairs(pairs_file, out_format, options, threshold, index_dir):
    import csv
    import json
    import sys

    from embedkit.cli.common import schema_name
    from embedkit.cli.index import calibration_store
    from embedkit.compare import PairProblem, compare_pairs

    pairs = read_pairs(pairs_file)
    pipeline, _ = make_pipeline(options, job="bulk" if len(pairs) > 8 else "single")
    writer = csv.DictWriter(sys.stdout, PAIR_COLUMNS, extrasaction="ignore") if out_format == "csv" else None
    if writer:
        writer.writeheader()
    failed = 0
    with calibration_store(index_dir) as store:
        results = list(compare_pairs(pipeline, pairs, threshold, store))
    for result in results:
        row = result.to_dict()
        failed += isinstance(result, PairProblem)
        if writer:
            writer.writerow({**row, "score": f"{row['score']:.4f}", "distance": f"{row['distance']:.4f}"}
                            if "score" in row else row)
        else:
            click.echo(json.dumps({"schema": schema_name(), **row}))
        sys.stdout.flush()
    if failed:
        click.echo(f"{failed} of {len(pairs)} pairs could not be compared", err=True)
        raise SystemExit(1)
