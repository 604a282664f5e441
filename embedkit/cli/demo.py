import click

from embedkit.cli.common import emit, make_pipeline, report_errors
from embedkit.textsafe import printable


@click.command("demo")
@click.option("--index", "index_dir", default=None, type=click.Path(file_okay=False),
              help="Where to build the demo index (default: a 'demo' index in embedkit's folder).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@report_errors
def command(index_dir, as_json):
    """Index the bundled sample faces with pretrained facenet, then query and compare."""
    from embedkit import paths
    from embedkit.demo import run_demo

    folder = index_dir or paths.home() / "indexes" / "demo"
    pipeline, _ = make_pipeline({})
    result = run_demo(pipeline, folder)
    if as_json:
        emit(True, result)
        return
    report = result["index"]
    lines = [f"Indexed {report['total_faces']} faces from {report['total_files']} sample photos into {folder}"]
    for query in result["queries"]:
        best = query["faces"][0]["matches"][0] if query["faces"] else None
        ok = "right" if query["found"] == query["expected"] else "WRONG"
        lines.append(f"query {query['query']}: best match {best['path'] if best else '-'} "
                     f"(person {query['found']}, score {best['score'] if best else 0:.3f}) - {ok}")
    for key in ("compare_same", "compare_different"):
        c = result[key]
        verdict = "same person" if c["same"] else "different people"
        lines.append(f"compare {c['path_a'].split('samples/')[-1]} vs {c['path_b'].split('samples/')[-1]}: "
                     f"score {c['score']:.3f} -> {verdict}")
    click.echo("\n".join(printable(line) for line in lines))  # the demo index folder is the user's
