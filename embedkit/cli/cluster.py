import click

from embedkit.cli.common import emit, report_errors
from embedkit.cli.index import index_option, open_index


@click.command("cluster")
@index_option
@click.option("--threshold", type=float, default=None,
              help="Same-person cosine threshold to cluster at (default: the index's calibrated one).")
@click.option("--min-faces", default=2, show_default=True, type=click.IntRange(1, None),
              help="Smallest group of new faces that becomes a person.")
@click.option("--include-low-quality", is_flag=True, help="Also cluster faces below the index's quality settings.")
@click.option("--relative", default=0.8, show_default=True, type=click.FloatRange(0, 1),
              help="Two groups must also reach this share of their own within-group similarity (0: off).")
@click.option("--relative-min", default=4, show_default=True, type=click.IntRange(2, None),
              help="Only groups of at least this many faces are held to --relative.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@report_errors
def command(index_dir, threshold, min_faces, include_low_quality, relative, relative_min, as_json):
    """Group the index's faces into people (new faces join existing people or form new ones)."""
    from embedkit.people import cluster

    with open_index(index_dir, create=False) as index:
        report = cluster(index, threshold=threshold, min_faces=min_faces, include_low_quality=include_low_quality,
                         relative=relative, relative_min=relative_min)
    note = "" if report.calibrated else " (uncalibrated threshold)"
    if report.pair_floor is not None:
        n_faces = report.faces - report.low_quality
        note += f", two lone faces pair up from {report.pair_floor:.3f} (1 in {n_faces:,} pairs of strangers reach it)"
    emit(as_json, report.to_dict(),
         f"{report.index}: {report.people} people. This run: {report.considered} faces clustered, "
         f"{report.joined_existing} joined existing people, {report.in_new_people} formed {report.new_people} "
         f"new people, {report.unassigned} left unassigned; {report.low_quality} below the quality settings; "
         f"merge threshold {report.threshold:.3f}{note}; {report.seconds:.2f} s")
