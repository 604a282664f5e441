"""FinetuneConfig defaults and validation."""

import pytest

from embedkit.training.config import ALL_BLOCKS, FinetuneConfig


def test_resolved_defaults():
    assert FinetuneConfig(backbone="simple").weights_source == "random"
    assert FinetuneConfig(backbone="simple").unfreeze_blocks == ALL_BLOCKS
    facenet = FinetuneConfig()
    assert facenet.weights_source == "pretrained" and facenet.unfreeze_blocks == 0 and not facenet.from_scratch
    assert FinetuneConfig(one_photo_per_person=True).n_augment_copies == 8
    assert FinetuneConfig().n_augment_copies == 0
    assert FinetuneConfig().first_learning_rate == 1e-4
    assert FinetuneConfig(backbone="simple").first_learning_rate == 1e-3
    assert FinetuneConfig(learning_rate=0.01).first_learning_rate == 0.01


def test_round_trip():
    config = FinetuneConfig(data="d", out="o", head_units=[64, 32], unfreeze=2, margin=0.8)
    again = FinetuneConfig.from_dict(config.to_dict())
    assert again == config and again.head_units == (64, 32)


@pytest.mark.parametrize("bad", [{"margin": 0}, {"hard_negatives": 1.5}, {"batch_size": 1}, {"unfreeze": -2},
                                 {"shift": "fog"}, {"loss": "distill"}, {"loss": "distill", "shift": "mask", "margin": -0.1}])
def test_bad_values(bad):
    with pytest.raises(ValueError):
        FinetuneConfig(**bad)


def test_distill_takes_a_shift_and_a_zero_margin():
    config = FinetuneConfig(loss="distill", shift="lowres", margin=0)
    assert config.loss_margin == 0.0 and FinetuneConfig(loss="distill", shift="mask").loss_margin == 0.0
