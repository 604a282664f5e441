"""All fine-tuning options in one dataclass; ``embedkit finetune`` flags map onto it one to one."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from embedkit.backbones import RANDOM
from embedkit.data.shifts import SHIFTS
from embedkit.losses import LOSSES

__all__ = ["FinetuneConfig", "ALL_BLOCKS"]

# ``unfreeze`` value meaning "train the whole backbone" (``--unfreeze all``).
ALL_BLOCKS = -1


@dataclass
class FinetuneConfig:
    """Options of a fine-tuning run.

    Data:
        data: folder of identity folders (``DATA/<person>/<images>``), or of
            photos of one person each with ``one_photo_per_person``.
        one_photo_per_person: every image is a different person (UTKFace);
            "same" pairs then come from augmented copies.
        augment_copies: augmented copies added per photo; None = 8 with
            ``one_photo_per_person``, else 0.
        max_images_per_person: keep at most this many photos of each person.
        detector: face detector name, or None when the images are already
            face crops (``--no-detect``).
        center_crop: without detection, the central fraction of each image kept.
        shift: a domain shift of :data:`embedkit.data.shifts.SHIFTS` (``lowres``,
            ``mask``) applied to every aligned crop, training, validation and
            test alike (each part its own random draws, from ``seed``): the
            model is trained and judged for faces like that. None: faces as
            they are.
        val_people, test_people: people held out for validation (early
            stopping, threshold) and for the final test; a fraction (< 1) or
            a count. With ``one_photo_per_person`` (and 2 or more copies) their
            pairs are made of augmented copies only: a held-out "same" pair
            is two different copies of one photo.

    Model:
        backbone: registry name (facenet, facenet512, vgg16, simple).
        weights: ``pretrained``, ``random`` or a local weights file; None =
            pretrained, except ``random`` for ``simple``.
        input_size: crop side; None = the backbone's own.
        head_units: projection head sizes (empty: none). A last layer as wide
            as the backbone's output starts as the identity, so training starts
            from the pretrained embedding.

    Training:
        epochs: epochs of the first phase (frozen backbone, or the whole
            network when training from scratch).
        unfreeze: top backbone blocks trained in the second phase (0: none;
            ``ALL_BLOCKS`` (-1): the whole backbone, in one phase); None = all
            for random weights, else 0.
        unfreeze_epochs: epochs of the second phase; None = ``epochs``.
        learning_rate: Adam learning rate of the first phase; None = 1e-3 from
            scratch, 1e-4 over a pretrained backbone (more overfits small sets).
        unfreeze_learning_rate: of the second phase (lower, not to undo pretraining).
        loss: a name in :data:`embedkit.losses.LOSSES`: ``contrastive``
            (Siamese pairs), ``triplet`` (semi-hard triplets mined in
            batches of several people x several faces), ``arcface`` (an
            additive-angular-margin identity head: one centre per training
            person, starting at the person's mean embedding, learnt with the
            encoder; same batches as triplet) or ``distill`` (with
            ``shift``: each shifted training face's embedding pulled onto
            the starting model's embedding of the same face unshifted) or
            ``triplet+distill`` (with ``shift``: the two summed, triplet batches).
        margin: the loss's margin; None = its default (contrastive: 1.4, in
            Euclidean distance between unit vectors, different people pushed
            to about orthogonal; triplet: 0.2, in squared distance, FaceNet's;
            arcface: 0.5 radians; distill: 0, in ``1 - cos``).
        batch_size: pairs per step (contrastive); a triplet step embeds as
            many faces as a pair step (``2 * batch_size``).
        faces_per_person: faces of each person in a triplet (or arcface) batch.
        pairs_per_epoch: pairs drawn afresh each epoch; 0 = 5 per training
            crop, at least 2,000 and at most 30,000. A triplet epoch embeds
            as many faces (``2 * pairs_per_epoch``).
        hard_negatives: fraction of the different-person pairs that are hard
            negatives (nearest other-person faces under the current model),
            mined again each epoch.
        patience: epochs without validation improvement before stopping.
        eval_pairs: validation and test pairs (balanced).
        feature_cache: folder keeping the frozen backbone's outputs, keyed by
            the crops' content, the backbone, its weights and the cut; a rerun
            on the same faces skips the frozen pass (None: no cache).
        seed: seeds the split, augmentation, pair sampling and Keras
            (``keras.utils.set_random_seed``: weight initialisation).
    """

    data: str = ""
    out: str = ""
    backbone: str = "facenet"
    weights: str | None = None
    input_size: int | None = None
    head_units: tuple[int, ...] = (128,)
    one_photo_per_person: bool = False
    augment_copies: int | None = None
    max_images_per_person: int | None = None
    detector: str | None = "yunet"
    center_crop: float = 1.0
    shift: str | None = None
    val_people: float = 0.15
    test_people: float = 0.15
    epochs: int = 10
    unfreeze: int | None = None
    unfreeze_epochs: int | None = None
    learning_rate: float | None = None
    unfreeze_learning_rate: float = 1e-4
    loss: str = "contrastive"
    margin: float | None = None
    batch_size: int = 64
    faces_per_person: int = 4
    pairs_per_epoch: int = 0
    hard_negatives: float = 0.0
    patience: int = 3
    eval_pairs: int = 3000
    feature_cache: str | None = None
    seed: int = 0

    def __post_init__(self):
        self.head_units = tuple(int(u) for u in self.head_units)
        if self.epochs < 0 or (self.unfreeze_epochs is not None and self.unfreeze_epochs < 0):
            raise ValueError("epochs must be >= 0")
        if not 0.0 <= self.hard_negatives <= 1.0:
            raise ValueError(f"hard_negatives must be a fraction in [0, 1], got {self.hard_negatives}")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; valid losses: {', '.join(sorted(LOSSES))}")
        if self.faces_per_person < 2:
            raise ValueError(f"faces_per_person must be >= 2, got {self.faces_per_person}")
        if self.margin is not None and (self.margin < 0 or (self.margin == 0 and self.loss != "distill")):
            raise ValueError(f"margin must be > 0, got {self.margin}")
        if self.shift is not None and self.shift not in SHIFTS:
            raise ValueError(f"unknown shift {self.shift!r}; valid shifts: {', '.join(sorted(SHIFTS))}")
        if "targets" in LOSSES[self.loss].inputs and self.shift is None:
            raise ValueError(f"loss {self.loss!r} needs a shift: the starting model's embedding of the clean face "
                             "is the target for the shifted one")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2, got {self.batch_size}")
        if self.unfreeze is not None and self.unfreeze < ALL_BLOCKS:
            raise ValueError(f"unfreeze must be a number of blocks, or -1 for all; got {self.unfreeze}")

    # -- resolved defaults ---------------------------------------------------------------------
    @property
    def weights_source(self) -> str:
        if self.weights:
            return self.weights
        return RANDOM if self.backbone == "simple" else "pretrained"

    @property
    def loss_margin(self) -> float:
        return self.margin if self.margin is not None else LOSSES[self.loss].margin

    @property
    def n_augment_copies(self) -> int:
        if self.augment_copies is not None:
            return self.augment_copies
        return 8 if self.one_photo_per_person else 0

    @property
    def unfreeze_blocks(self) -> int:
        if self.unfreeze is not None:
            return self.unfreeze
        return ALL_BLOCKS if self.weights_source == RANDOM else 0

    @property
    def first_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 1e-3 if self.from_scratch or self.weights_source == RANDOM else 1e-4

    @property
    def from_scratch(self) -> bool:
        """The whole network trains in one phase (no frozen part to cache)."""
        return self.unfreeze_blocks == ALL_BLOCKS

    def to_dict(self) -> dict:
        data = asdict(self)
        data["head_units"] = list(self.head_units)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "FinetuneConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
