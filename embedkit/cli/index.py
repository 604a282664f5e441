import contextlib
from pathlib import Path

import click

from embedkit.cli.common import emit, encoder_options, make_pipeline, report_errors
from embedkit.textsafe import printable, skipped_line


STARTING_FORMAT = "{desc}: {n_fmt}/{total_fmt} photos [{elapsed}, starting]"


def index_option(func):
    return click.option("--index", "index_dir", default=None, type=click.Path(file_okay=False),
                        help="Index folder (default: embedkit's own folder, see `embedkit info`).")(func)


def open_index(index_dir, create: bool):
    from embedkit import paths
    from embedkit.index import FaceIndex

    folder = index_dir or paths.default_index_dir()
    return FaceIndex.create(folder) if create else FaceIndex.open(folder)


def _index_exists(index_dir) -> bool:
    from embedkit import paths
    from embedkit.index.face_index import STORE_FILE

    return (Path(index_dir or paths.default_index_dir()) / STORE_FILE).exists()


def check_new_index_settings(index_dir, factory, search_params, dim) -> None:
    """Bad --factory or --search-params for a new index: an error before its folder is made."""
    from embedkit.index.vectors import DEFAULT_FACTORY, check_settings

    if not _index_exists(index_dir):
        check_settings(DEFAULT_FACTORY if factory is None else factory, search_params or "", dim)


@contextlib.contextmanager
def calibration_store(index_dir):
    """The metadata store of an index (given, else the default one) for its calibrations; None if there is none."""
    from embedkit.errors import IndexStoreError

    try:
        index = open_index(index_dir, create=False)
    except IndexStoreError:
        if index_dir is not None:
            raise
        yield None
        return
    with index:
        yield index.store


def _stored_source(index_dir) -> dict:
    """The pipeline settings an existing index was built with ({} for a new one)."""
    if not _index_exists(index_dir):
        return {}
    with open_index(index_dir, create=False) as index:
        return index.source


LOCAL_RAY = "local"


def _embedder(ray_address, workers, source, pipeline):
    """A Ray embedder (started) for --ray, else a context holding None (embed in this process)."""
    from contextlib import nullcontext

    if ray_address is None:
        return nullcontext()
    from embedkit.distributed import RayEmbedder

    embedder = RayEmbedder(source, pipeline.batch_size, None if ray_address == LOCAL_RAY else ray_address, workers)
    try:
        return embedder.start(pipeline)
    except BaseException:
        embedder.close()
        raise


@click.command("index")
@click.argument("folder", required=False, type=click.Path(file_okay=True))
@index_option
@encoder_options
@click.option("--labels", is_flag=True, help="Label each photo's main face with its folder's name.")
@click.option("--min-face-size", type=click.FloatRange(0, None), default=None,
              help="Faces smaller than this (pixels, shorter side) are kept but left out of clustering and "
                   "query --all (stored with the index; default 32).")
@click.option("--min-face-score", type=click.FloatRange(0, 1), default=None,
              help="Likewise for faces found with a lower detector score (default 0.8).")
@click.option("--factory", default=None, help="FAISS index factory string (default IDMap,Flat: exact search).")
@click.option("--search-params", default=None, help="FAISS search parameters, e.g. 'nprobe=16' or 'efSearch=128'.")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1, 1024))
@click.option("--ray", "ray_address", is_flag=False, flag_value=LOCAL_RAY, default=None, metavar="[ADDRESS]",
              help="Embed on a Ray cluster (ADDRESS: auto, HOST:6379 or ray://HOST:10001; none: a local Ray "
                   "runtime). Workers need the photos and model at the same paths. Needs embedkit[ray].")
@click.option("--ray-workers", default=None, type=click.IntRange(1), help="With --ray: Ray actors (default: one per CPU).")
@click.option("--verify", is_flag=True, help="Check that vectors and metadata agree (no FOLDER needed).")
@click.option("--repair", is_flag=True, help="With --verify: fix what can be fixed.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@report_errors
def command(folder, index_dir, labels, min_face_size, min_face_score, factory, search_params, batch_size, ray_address,
            ray_workers, verify, repair, as_json, **options):
    """Detect and embed every face in FOLDER's images into a searchable index.

    Re-running embeds only new or changed files and drops deleted ones.
    """
    if verify or repair:
        with open_index(index_dir, create=False) as index:
            result = index.verify(repair=repair)
        problems = [printable(p) for p in result["problems"]]
        text = "index OK" if result["ok"] else "problems:\n  " + "\n  ".join(problems)
        text += "".join(f"\nnote: {printable(note)}" for note in result.get("notes", []))
        if result.get("repaired"):
            after = result["after"]
            text += "\nrepaired: " + ("index OK" if after["ok"] else printable("; ".join(after["problems"])))
        emit(as_json, result, f"{printable(result['index'])}: {result['faces']} faces; {text}")
        if not result["ok"] and not result.get("repaired"):
            raise SystemExit(1)
        return
    if folder is None:
        raise click.UsageError("give a FOLDER of images to index (or --verify)")
    if not Path(folder).is_dir():
        raise click.ClickException(f"{printable(folder)}: not a folder (give a folder of images)")
    from tqdm import tqdm

    # The model is loaded before the index is touched: a bad --backbone or
    # --model must leave no new or changed index behind.
    pipeline, source = make_pipeline(options, _stored_source(index_dir), batch_size, job="bulk")
    check_new_index_settings(index_dir, factory, search_params, pipeline.encoder.embedding_dim)
    with _embedder(ray_address, ray_workers, source, pipeline) as embedder, \
            open_index(index_dir, create=True) as index:
        if min_face_size is not None or min_face_score is not None:
            from embedkit.people.quality import set_quality

            set_quality(index.store, min_face_size, min_face_score)
        bar = None

        starting = True

        def on_start(total):
            nonlocal bar
            # No rate or ETA until a first batch is embedded: start-up is no measure of speed.
            bar = tqdm(total=total, unit="photo", desc="Embedding", disable=as_json, leave=False, smoothing=0,
                       bar_format=STARTING_FORMAT)

        def progress(path):
            nonlocal starting
            if bar is None:
                return
            bar.update(1)
            if starting and bar.n >= min(batch_size, bar.total or 1):
                starting = False
                if not as_json:
                    bar.bar_format = None
                    bar.refresh()

        try:
            report = index.update(folder, pipeline, labels=labels, factory=factory, search_params=search_params,
                                  progress=progress, on_start=on_start, source=source, embedder=embedder)
        finally:
            if bar is not None:
                bar.close()
    for error in report.errors:
        if not as_json:
            click.echo(skipped_line(error), err=True)
    summary = (
        f"{printable(report.index)}: {report.total_faces} faces in {report.total_files} files. This run: "
        f"{report.files_seen} images seen, {report.embedded_files} embedded ({report.faces_added} faces, "
        f"{report.files_without_faces} without a face), {report.unchanged} unchanged, "
        f"{report.reused_files} moved or duplicated, {report.removed_files} removed "
        f"({report.faces_removed} faces), {len(report.errors)} skipped; {report.seconds:.1f} s"
    )
    if report.interrupted:
        summary += " (interrupted: work so far is saved; run again to resume)"
    emit(as_json, report.to_dict(), summary)
    if report.interrupted:
        raise SystemExit(130)
