import click

from embedkit.cli.common import emit, encoder_options, make_pipeline, report_errors
from embedkit.cli.index import index_option, open_index


@click.command("calibrate")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False),
              help="Identity folders of your own people: DATA/<person>/<photos>.")
@click.option("--far", default=1e-3, show_default=True, type=click.FloatRange(1e-7, 0.5),
              help="Target false-accept rate (fraction of different-people pairs called 'same').")
@click.option("--folds", default=5, show_default=True, type=click.IntRange(2, 20),
              help="Identity-disjoint folds the held-out rates are measured on.")
@index_option
@encoder_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@report_errors
def command(data_dir, far, folds, index_dir, as_json, **options):
    """Pick the same-person threshold at a target false-accept rate on your own people.

    It is stored with the index (default), or with the --model folder when one
    is given, for the model and face setting it was measured with; compare,
    query and cluster use it from then on.
    """
    from tqdm import tqdm

    from embedkit.calibration import calibrate_folder, save_to_index, save_to_model
    from embedkit.data.folders import identity_folders

    model_dir = options.get("model_dir")
    if model_dir is not None:
        pipeline, _ = make_pipeline(options)
        index = None
    else:
        index = open_index(index_dir, create=False)
        pipeline, _ = make_pipeline(options, index.source)
    try:
        if index is not None:
            index.check_compatible(pipeline)
        total = len(identity_folders(data_dir).paths)
        with tqdm(total=total, unit="photo", desc="Embedding", disable=as_json, leave=False) as bar:
            report = calibrate_folder(pipeline, data_dir, far, folds, progress=lambda _: bar.update(1))
        if index is not None:
            save_to_index(index.store, report)
            report["stored_with"] = str(index.folder)
        else:
            report["stored_with"] = str(save_to_model(model_dir, report).parent)
    finally:
        if index is not None:
            index.close()
    held = report["held_out"]
    text = (f"threshold {report['threshold']:.4f} at FAR {far:g} for {report['model_id']} with face setting "
            f"{report['setting']}, stored with {report['stored_with']}.\n"
            f"Chosen on {report['n_genuine']} same-person and {report['n_impostor']} different-people pairs of "
            f"{report['n_people']} people; on held-out people ({folds} identity-disjoint folds): FAR "
            f"{held['far']:.2e} ({held['false_accepts']} of {held['n_impostor']}), TAR {held['tar']:.4f}, "
            f"accuracy {held['accuracy']:.4f}")
    if report.get("warning"):
        text += f"\nwarning: {report['warning']}"
    emit(as_json, report, text)
