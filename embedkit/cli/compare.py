import click

from embedkit.cli.common import emit, encoder_options, make_pipeline, report_errors


@click.command("compare")
@click.argument("image_a", type=click.Path(dir_okay=True))
@click.argument("image_b", type=click.Path(dir_okay=True))
@encoder_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@report_errors
def command(image_a, image_b, as_json, **options):
    """How similar are the faces in IMAGE_A and IMAGE_B?"""
    from embedkit.compare import compare_files

    pipeline, _ = make_pipeline(options)
    result = compare_files(pipeline, image_a, image_b)
    verdict = "same person" if result.same else "different people"
    note = "" if result.calibrated else " (uncalibrated threshold)"
    emit(as_json, result.to_dict(),
         f"score {result.score:.3f} (distance {result.distance:.3f}): {verdict} at threshold "
         f"{result.threshold:.3f}{note}"
         + (f"\n{result.strangers} ({result.reference})" if result.strangers else ""))
