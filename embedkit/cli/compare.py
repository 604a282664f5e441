import click

from embedkit.cli.common import emit, encoder_options, make_pipeline, report_errors


@click.command("compare")
@click.argument("image_a", type=click.Path(dir_okay=True))
@click.argument("image_b", type=click.Path(dir_okay=True))
@encoder_options
@click.option("--threshold", type=float, default=None,
              help="Same-person cosine threshold for this comparison (default: the calibrated one).")
@click.option("--index", "index_dir", default=None, type=click.Path(file_okay=False),
              help="Use the threshold calibrated with this index (default: embedkit's own index, if any).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@report_errors
def command(image_a, image_b, threshold, index_dir, as_json, **options):
    """How similar are the faces in IMAGE_A and IMAGE_B?"""
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
