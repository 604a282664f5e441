"""``embedkit finetune``: train a Siamese encoder on identity-labelled faces."""

from __future__ import annotations

import click

from embedkit.cli.common import emit, import_tensorflow_quietly, report_errors
from embedkit.data.shifts import SHIFTS
from embedkit.losses import LOSSES
from embedkit.textsafe import printable


class _Blocks(click.ParamType):
    """A number of backbone blocks, or ``all``."""

    name = "N|all"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, int):
            return value
        if str(value).lower() == "all":
            return -1
        try:
            number = int(value)
        except ValueError:
            self.fail(f"{value!r} is not a number of blocks or 'all'", param, ctx)
        if number < 0:
            self.fail("must be >= 0 (or 'all')", param, ctx)
        return number


def _head(value: str) -> tuple[int, ...]:
    if value.strip().lower() in ("", "none", "0"):
        return ()
    try:
        units = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected sizes like '128' or '256,128', or 'none'") from None
    if any(u < 1 for u in units):
        raise click.BadParameter("head sizes must be positive")
    return units


@click.command("finetune")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False),
              help="Identity folders DATA/<person>/<images> (or photos of one person each, see below).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Model folder to write.")
@click.option("--backbone", default="facenet", show_default=True, help="facenet, facenet512, vgg16 or simple.")
@click.option("--weights", default=None,
              help="'pretrained', 'random' or a local weights file [default: pretrained; random for simple].")
@click.option("--input-size", type=click.IntRange(16), default=None, help="Crop side [default: the backbone's].")
@click.option("--head", "head_units", default="128", show_default=True,
              help="Projection head sizes, e.g. '128' or '256,128'; 'none' for no head.")
@click.option("--one-photo-per-person", is_flag=True,
              help="Every image is a different person (UTKFace): same pairs come from augmented copies.")
@click.option("--augment-copies", type=click.IntRange(0), default=None,
              help="Augmented copies per photo [default: 8 with --one-photo-per-person, else 0].")
@click.option("--max-images-per-person", type=click.IntRange(1), default=None, help="Keep at most this many per person.")
@click.option("--detector", default="yunet", show_default=True, help="Face detector: yunet or mtcnn.")
@click.option("--no-detect", is_flag=True, help="Images are already face crops: skip detection.")
@click.option("--center-crop", default=1.0, show_default=True, type=click.FloatRange(0.05, 1.0),
              help="With --no-detect: keep this central fraction of each image.")
@click.option("--shift", default=None, type=click.Choice(sorted(SHIFTS)),
              help="Train and test for faces under this shift (every crop: lowres = 24 px, mask = lower face "
                   "covered); needed by --loss distill.")
@click.option("--val-people", default=0.15, show_default=True, type=click.FloatRange(0),
              help="Validation people: a fraction (< 1) or a count.")
@click.option("--test-people", default=0.15, show_default=True, type=click.FloatRange(0),
              help="Test people: a fraction (< 1) or a count.")
@click.option("--epochs", default=10, show_default=True, type=click.IntRange(0),
              help="Epochs with the backbone frozen (or of training from scratch).")
@click.option("--unfreeze", type=_Blocks(), default=None,
              help="Then train the top N backbone blocks too ('all': train everything from the start) "
                   "[default: 0; all for random weights].")
@click.option("--unfreeze-epochs", type=click.IntRange(0), default=None, help="Epochs of the unfrozen phase [default: --epochs].")
@click.option("--learning-rate", default=None, type=float,
              help="First phase [default: 1e-3 from scratch, 1e-4 over pretrained weights].")
@click.option("--unfreeze-learning-rate", default=1e-4, show_default=True, type=float)
@click.option("--loss", default="contrastive", show_default=True, type=click.Choice(sorted(LOSSES)),
              help="contrastive: Siamese pairs; triplet: semi-hard triplets mined in batches of people x faces; "
                   "arcface: additive-angular-margin identity head over the training people; distill (with --shift): each shifted face pulled onto the starting model's embedding of it unshifted; "
                   "triplet+distill: the two summed.")
@click.option("--margin", default=None, type=float,
              help="The loss's margin [default: contrastive 1.4 (distance of unit vectors), triplet 0.2 "
                   "(squared distance), arcface 0.5 (radians), distill 0 (1 - cos)].")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(2),
              help="Pairs per step (a triplet step embeds as many faces).")
@click.option("--faces-per-person", default=4, show_default=True, type=click.IntRange(2),
              help="With --loss triplet or arcface: faces of each person in a batch.")
@click.option("--pairs-per-epoch", default=0, show_default=True, type=click.IntRange(0),
              help="Pairs drawn each epoch; 0 = 5 per training crop (2,000 to 30,000).")
@click.option("--hard-negatives", default=0.0, show_default=True, type=click.FloatRange(0, 1),
              help="Fraction of different pairs that are hard negatives, mined each epoch.")
@click.option("--patience", default=3, show_default=True, type=click.IntRange(1), help="Early-stopping patience (epochs).")
@click.option("--eval-pairs", default=3000, show_default=True, type=click.IntRange(2), help="Validation and test pairs.")
@click.option("--feature-cache", type=click.Path(file_okay=False), default=None,
              help="Keep the frozen backbone's outputs here; a rerun on the same faces skips that pass.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seeds the split, sampling and weights.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bars on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print the final report as JSON.")
@report_errors
def command(as_json, progress, no_detect, head_units, **options):
    """Fine-tune a face encoder on identity-labelled photos (contrastive pairs or triplets).

    Writes a model folder for `compare`, `index`, `query` and `evaluate`
    (`--model OUT`), with a before/after report on held-out test people
    (finetune_report.txt / .json, roc.png).
    """
    from embedkit.training.config import FinetuneConfig

    if no_detect:
        options["detector"] = None
    try:
        config = FinetuneConfig(head_units=_head(head_units), **options)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    import_tensorflow_quietly()
    from embedkit.training.trainer import finetune

    result = finetune(config, progress=progress and not as_json)
    emit(as_json, {"out": str(result.out), "model_id": result.encoder.model_id, **result.report},
         result.text + f"\nModel saved in {printable(result.out)} (use --model {printable(result.out)}).")
