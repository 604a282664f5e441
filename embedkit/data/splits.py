"""Identity-disjoint train / validation / test splits.

People, not photos, are split, so no person seen in training is used to
choose the model or to test it. A split is a plain dict of label lists (and
the names behind them) that is saved with the model and rebuilt exactly from
the same labels and seed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = ["Split", "split_identities", "count_of"]

PARTS = ("train", "val", "test")


def count_of(amount: float, total: int) -> int:
    """``amount`` people out of ``total``: a fraction if below 1, else a count."""
    if amount < 0:
        raise ValueError(f"amount must be >= 0, got {amount}")
    if amount < 1:
        return int(round(amount * total))
    if amount != int(amount):
        raise ValueError(f"a count of people must be a whole number, got {amount}")
    return int(amount)


@dataclass
class Split:
    """Which people (integer labels) are in each part.

    Attributes:
        train, val, test: sorted label lists, pairwise disjoint.
        seed: the seed it was drawn with (None if given by hand).
        names: optional person name of each label in the split, by part.
    """

    train: list[int]
    val: list[int]
    test: list[int]
    seed: int | None = None
    names: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self):
        self.train, self.val, self.test = (sorted(int(x) for x in part) for part in (self.train, self.val, self.test))
        seen: set[int] = set()
        for part in PARTS:
            labels = set(getattr(self, part))
            if labels & seen:
                raise ValueError(f"split parts share people: {sorted(labels & seen)[:5]}")
            seen |= labels

    def part_of(self, labels) -> np.ndarray:
        """For each label, ``"train"``, ``"val"``, ``"test"`` or ``""`` (in none)."""
        labels = np.asarray(labels)
        out = np.full(labels.shape, "", dtype=object)
        for part in PARTS:
            out[np.isin(labels, getattr(self, part))] = part
        return out

    def mask(self, labels, part: str) -> np.ndarray:
        if part not in PARTS:
            raise ValueError(f"unknown split part {part!r}; expected one of {', '.join(PARTS)}")
        return np.isin(np.asarray(labels), getattr(self, part))

    def with_names(self, names: list[str]) -> "Split":
        """The same split, with person names filled in from ``names[label]``."""
        return Split(self.train, self.val, self.test, self.seed,
                     {part: [names[i] for i in getattr(self, part)] for part in PARTS})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Split":
        return cls(data["train"], data["val"], data["test"], data.get("seed"), data.get("names", {}))

    def summary(self) -> dict:
        return {part: len(getattr(self, part)) for part in PARTS}


def split_identities(labels, val: float = 0.15, test: float = 0.15, seed: int = 0) -> Split:
    """Split the distinct labels into disjoint train / val / test people.

    ``val`` and ``test`` are fractions of all people (below 1) or counts (1 or
    more). The draw depends only on the set of labels and the seed.
    """
    people = np.unique(np.asarray(labels, dtype=np.int64))
    n = people.size
    n_test, n_val = count_of(test, n), count_of(val, n)
    if n_test + n_val >= n:
        raise ValueError(f"{n} people cannot give {n_val} validation and {n_test} test people and still train")
    order = np.random.default_rng(seed).permutation(people)
    return Split(order[n_test + n_val:].tolist(), order[n_test:n_test + n_val].tolist(), order[:n_test].tolist(),
                 seed)
