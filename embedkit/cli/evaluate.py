import click

from embedkit.cli.common import emit, encoder_options, make_pipeline, report_errors
from embedkit.errors import EmbedkitError
from embedkit.textsafe import printable, skipped_line


@click.command("evaluate")
@click.option("--pairs", "pairs_file", type=click.Path(exists=True, dir_okay=False),
              help="A pairs file in LFW's format (pairs.txt); needs --images.")
@click.option("--images", "images_dir", type=click.Path(exists=True, file_okay=False),
              help="The folder the pairs' paths are relative to (LFW: lfw-deepfunneled).")
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False),
              help="An identity folder DATA/<person>/<images>: pairs are sampled, and retrieval measured.")
@click.option("--one-photo", is_flag=True,
              help="With --data: every image is a different person (UTKFace); 'same' pairs come from "
                   "augmented copies.")
@click.option("--folds", type=click.IntRange(1), default=None,
              help="With --pairs: only the first K folds (a quick check).")
@click.option("--n-pairs", default=3000, show_default=True, type=click.IntRange(10),
              help="With --data: pairs to sample.")
@click.option("--seed", default=0, show_default=True, help="With --data: seed of the pair sampling.")
@click.option("-k", "ks", multiple=True, type=click.IntRange(1), default=(1, 5, 10), show_default=True,
              help="With --data: recall@k for these k (repeatable).")
@click.option("--groups", type=click.Choice(["utkface"]), default=None,
              help="With --data: error rates per group read from file names (utkface: gender, race; "
                   "implies --one-photo).")
@click.option("--all-people", is_flag=True,
              help="With --data and a fine-tuned --model: score every person, also those the model trained on "
                   "[default: only the model's held-out test people].")
@click.option("--threshold", type=float, default=None,
              help="Threshold of the group breakdown (default: the best one on these pairs).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write the ROC curve to this PNG file.")
@encoder_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@report_errors
def command(pairs_file, images_dir, data_dir, one_photo, folds, n_pairs, seed, ks, groups, all_people, threshold,
            plot_path, as_json, **options):
    """Measure verification accuracy (and retrieval) of an encoder on labelled faces.

    \b
    LFW protocol:    embedkit evaluate --pairs lfw/pairs.txt --images lfw/lfw-deepfunneled
    Identity folder: embedkit evaluate --data att --n-pairs 2000
    UTKFace groups:  embedkit evaluate --data utkface --one-photo --groups utkface
    """
    from embedkit.evaluation import evaluate as ev

    if bool(pairs_file) == bool(data_dir):
        raise click.UsageError("give either --pairs FILE --images DIR, or --data DIR")
    if pairs_file and not images_dir:
        raise click.UsageError("--pairs needs --images DIR (the folder its paths are relative to)")
    if groups == "utkface":
        one_photo = True  # UTKFace holds one photo per person
    pipeline, source = make_pipeline(options, job="bulk")
    show = not as_json
    if pairs_file:
        from embedkit.evaluation.pairs import read_lfw_pairs

        try:
            pairs = read_lfw_pairs(pairs_file)
        except (OSError, ValueError) as exc:
            raise EmbedkitError(str(exc)) from None
        n_images = len({p for pair in pairs if folds is None or pair.fold < folds
                        for p in (pair.path_a, pair.path_b)})
        with _progress(show, n_images, "Embedding") as step:
            result = ev.evaluate_pairs(pipeline, pairs, images_dir, folds=folds, progress=step, keep_scores=True)
        verification, extra = result, {}
    else:
        from embedkit.data.folders import load_labelled_images

        images = load_labelled_images(data_dir, one_photo=one_photo)
        people, notice = _people(pipeline.encoder, images.names, all_people)
        if notice:
            click.echo(notice, err=True)
        n_images = len(images) if people is None else int(sum(images.names[label] in set(people)
                                                                 for label in images.labels))
        group_fn = ev.GROUP_FUNCTIONS[groups] if groups else None
        with _progress(show, n_images, "Embedding") as step:
            try:
                result = ev.evaluate_folder(pipeline, data_dir, n_pairs=n_pairs, seed=seed, ks=ks,
                                            group_fn=group_fn, one_photo=one_photo, threshold=threshold,
                                            progress=step, keep_scores=True, people=people)
            except ValueError as exc:
                raise EmbedkitError(str(exc)) from None
        verification = result["verification"]
        extra = {"retrieval": result["retrieval"], "groups": result["groups"], "images": result["images"],
                 "people_scored": "all" if people is None else "model test people", "notice": notice}

    scores, same = result.pop("scores"), result.pop("same")
    result.pop("folds", None)
    if plot_path:
        from embedkit.evaluation.metrics import roc
        from embedkit.evaluation.plots import plot_roc

        fpr, tpr, _ = roc(scores, same)
        plot_roc({pipeline.encoder.backbone: (fpr, tpr)}, plot_path)

    summary = {key: value for key, value in verification.items() if key not in ("errors", "no_face")}
    data = {**summary, **({"rank1": extra["retrieval"]["rank1"]} if extra else {}), **extra,
            "model_id": pipeline.encoder.model_id, "source": source}
    errors = verification.get("errors", []) if pairs_file else extra["images"].get("errors", [])
    data["errors"] = errors
    if not as_json:
        for error in errors:
            click.echo(skipped_line(error), err=True)
    emit(as_json, data, _text(verification, extra, plot_path))


def _people(encoder, names, all_people: bool) -> tuple[list[str] | None, str]:
    """Whom to score with a fine-tuned model: its test people when the folder holds people it trained on."""
    from embedkit.evaluation.evaluate import trained_people_here

    trained, test = trained_people_here(encoder.metadata, names)
    if not trained:
        return None, ""
    if all_people:
        return None, (f"WARNING: scoring all people, {len(trained)} of whom this model trained or validated on: "
                      "the figures are optimistic")
    if len(test) < 2:
        raise EmbedkitError(f"this folder holds {len(trained)} people the model trained on and {len(test)} of its "
                            "test people; give --all-people to score them anyway (optimistic figures)")
    return test, (f"scoring only the model's {len(test)} held-out test people ({len(trained)} people here were "
                  "used in training; --all-people scores everyone)")


class _progress:
    """A click progress bar over images, or nothing (for --json)."""

    def __init__(self, show: bool, length: int, label: str):
        self.bar = click.progressbar(length=length, label=label, file=click.get_text_stream("stderr")) if show else None

    def __enter__(self):
        if self.bar is None:
            return None
        bar = self.bar.__enter__()
        return lambda _path: bar.update(1)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _text(v: dict, extra: dict, plot_path) -> str:
    lines = [
        f"pairs: {v['n_pairs']} in {v['n_folds']} folds ({v['fold_source']})",
        f"accuracy: {_pct(v['accuracy'])} ± {_pct(v['accuracy_std'])}",
        f"ROC AUC: {v['auc']:.4f}   EER: {_pct(v['eer'])} (threshold {v['eer_threshold']:.3f})",
        f"TAR @ FAR 1e-2: {_pct(v['tar_at_far_1e-2'])}   TAR @ FAR 1e-3: {_pct(v['tar_at_far_1e-3'])}",
        f"best threshold: {v['threshold']:.4f}",
    ]
    images = extra.get("images", v)
    if images.get("n_missing"):
        lines.append(f"images without a face: {images['n_missing']} of {images['n_images']} "
                     f"({images['n_errors']} unreadable)")
    if extra:
        r = extra["retrieval"]
        recalls = "  ".join(f"{k}: {_pct(val)}" for k, val in r.items() if k.startswith("recall@"))
        lines.append(f"retrieval ({r['n_queries']} queries over {r['n_items']} faces): rank-1 {_pct(r['rank1'])}  "
                     f"{recalls}")
        for attribute, report in (extra.get("groups") or {}).items():
            lines.append(f"{attribute} at threshold {report['threshold']:.3f}:")
            for name, g in report["groups"].items():
                lines.append(f"  {name:<10} FMR {_pct(g['fmr'])} ({g['false_matches']}/{g['n_different']})  "
                             f"FNMR {_pct(g['fnmr'])} ({g['false_non_matches']}/{g['n_same']})")
    if plot_path:
        lines.append(f"ROC plot: {printable(plot_path)}")
    return "\n".join(lines)
