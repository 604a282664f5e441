"""Model folders that were tampered with or damaged: refused in one line before
anything is built or stored, and the model id cannot be faked by a config."""

from __future__ import annotations

import json
import os
import pickle
import shutil

import pytest

from embedkit.encoder import CONFIG_FILE, WEIGHTS_FILE, Encoder
from embedkit.errors import ModelError

from .conftest import assert_refused, folder_hashes, index_args, run_cli


def _copy(model, tmp_path, name="model"):
    target = tmp_path / name
    shutil.copytree(model, target)
    return target


def _edit_config(folder, change):
    config = json.loads((folder / CONFIG_FILE).read_text())
    change(config)
    (folder / CONFIG_FILE).write_text(json.dumps(config))


def _refused_everywhere(small_index, model, tmp_path, *words):
    """index (existing and new), query and compare each refuse ``model`` in one line; nothing changes."""
    photos, index_dir = small_index
    image = photos / "s1" / "1.pgm"
    before = folder_hashes(index_dir)
    new_index = tmp_path / "new-index"
    assert_refused(run_cli(index_args(photos, index_dir, model)), *words)
    assert_refused(run_cli(index_args(photos, new_index, model)), *words)
    assert_refused(run_cli(["query", image, "--index", index_dir, "--model", model]), *words)
    assert_refused(run_cli(["compare", image, image, "--model", model, "--no-detect"]), *words)
    assert folder_hashes(index_dir) == before and not new_index.exists()


def test_other_weights_under_a_copied_config_are_refused(small_index, tiny_model, other_model, tmp_path):
    """The issue's case: a folder with the index's config but another model's weights."""
    forged = _copy(tiny_model, tmp_path)
    shutil.copy(other_model / WEIGHTS_FILE, forged / WEIGHTS_FILE)
    _refused_everywhere(small_index, forged, tmp_path, "weights are not the ones", str(forged))


def test_weights_of_another_architecture_are_refused(small_index, tiny_model, wide_model, tmp_path):
    forged = _copy(tiny_model, tmp_path)
    shutil.copy(wide_model / WEIGHTS_FILE, forged / WEIGHTS_FILE)
    # Keras may load part of a larger network's weights without complaint: the model id catches it.
    _refused_everywhere(small_index, forged, tmp_path, "weights", str(forged))


def test_a_config_claiming_the_index_model_id_is_not_believed(tiny_model, other_model, tmp_path):
    forged = _copy(other_model, tmp_path)
    claimed = json.loads((tiny_model / CONFIG_FILE).read_text())["model_id"]
    _edit_config(forged, lambda c: c.update(model_id=claimed))
    with pytest.raises(ModelError, match="weights are not the ones"):
        Encoder.load(forged)


def test_model_id_is_computed_from_the_loaded_weights(tiny_model):
    loaded = Encoder.load(tiny_model)
    saved_id = json.loads((tiny_model / CONFIG_FILE).read_text())["model_id"]
    loaded.refresh()  # forget any id: compute it again from the network's tensors
    assert loaded.model_id == saved_id


DAMAGED_CONFIGS = {
    "missing backbone": lambda c: c.pop("backbone"),
    "missing preprocessing": lambda c: c.pop("preprocessing"),
    "missing model_id": lambda c: c.pop("model_id"),
    "missing head_units": lambda c: c.pop("head_units"),
    "backbone not a string": lambda c: c.update(backbone=["simple"]),
    "size a string": lambda c: c["preprocessing"].update(size="32"),
    "size a float": lambda c: c["preprocessing"].update(size=32.5),
    "size absurd": lambda c: c["preprocessing"].update(size=10**9),
    "size negative": lambda c: c["preprocessing"].update(size=-32),
    "unknown scaling": lambda c: c["preprocessing"].update(scaling="magic"),
    "unknown preprocessing key": lambda c: c["preprocessing"].update(gamma=2),
    "head units absurd": lambda c: c.update(head_units=[10**12]),
    "head units not a list": lambda c: c.update(head_units="64"),
    "head too deep": lambda c: c.update(head_units=[8] * 1000),
    "head units boolean": lambda c: c.update(head_units=[True]),
    "threshold a string": lambda c: c.update(threshold="0.5"),
    "threshold out of range": lambda c: c.update(threshold=7.0),
    "unknown key": lambda c: c.update(load_this_module="os"),
    "metadata a list": lambda c: c.update(metadata=[1, 2]),
    "embedding size wrong": lambda c: c.update(embedding_dim=512),
    "unknown backbone": lambda c: c.update(backbone="nosuch"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGED_CONFIGS))
def test_damaged_config_is_one_line_before_anything_is_built(tiny_model, att_dir, tmp_path, damage):
    folder = _copy(tiny_model, tmp_path)
    _edit_config(folder, DAMAGED_CONFIGS[damage])
    photo = att_dir / "s1" / "1.pgm"  # a real photo: the model is what fails
    result = run_cli(["compare", photo, photo, "--model", folder])
    assert_refused(result, str(folder))


@pytest.mark.parametrize("content", ["[1, 2, 3]", "{not json", "null", '"a string"', "\x00\xff"],
                         ids=["list", "bad json", "null", "string", "binary"])
def test_config_that_is_not_an_object_is_one_line(tiny_model, tmp_path, content):
    folder = _copy(tiny_model, tmp_path)
    (folder / CONFIG_FILE).write_bytes(content.encode("latin-1"))
    with pytest.raises(ModelError, match=CONFIG_FILE):
        Encoder.load(folder)


def test_config_or_weights_linked_to_a_device_are_not_read(tiny_model, tmp_path):
    """A link to /dev/zero would be read forever; it is refused as missing."""
    for name, words in ((CONFIG_FILE, "not an embedkit model folder"), (WEIGHTS_FILE, "is missing")):
        folder = _copy(tiny_model, tmp_path, name.replace(".", "_"))
        (folder / name).unlink()
        os.symlink("/dev/zero", folder / name)
        with pytest.raises(ModelError, match=words):
            Encoder.load(folder)


def test_an_oversized_config_is_not_read(tiny_model, tmp_path):
    folder = _copy(tiny_model, tmp_path)
    with open(folder / CONFIG_FILE, "r+b") as f:
        f.truncate(200 << 20)  # sparse: takes no disk
    with pytest.raises(ModelError, match="larger than"):
        Encoder.load(folder)


def test_extra_files_in_a_model_folder_are_ignored(tiny_model, tmp_path):
    folder = _copy(tiny_model, tmp_path)
    with open(folder / "model.pkl", "wb") as f:
        pickle.dump({"payload": "never loaded"}, f)
    (folder / "notes.txt").write_text("hello")
    (folder / "sub").mkdir()
    assert Encoder.load(folder).model_id == Encoder.load(tiny_model).model_id


def test_leftovers_of_a_killed_save_are_removed_at_the_next_save(tiny_model, tmp_path):
    folder = _copy(tiny_model, tmp_path)
    for name in (".save-abc123", ".save-zz"):
        (folder / name).mkdir()
        (folder / name / WEIGHTS_FILE).write_bytes(b"half-written")
    (folder / ".save-file").write_text("a file, not a save folder: left alone")
    encoder = Encoder.load(folder)
    encoder.save(folder)
    # The fast runtime's conversion cache (``runtime/``) may sit beside the weights; no save leftover may.
    assert sorted(p.name for p in folder.iterdir() if p.name != "runtime") == [".save-file", CONFIG_FILE, WEIGHTS_FILE]
    assert Encoder.load(folder).model_id == encoder.model_id


def _indexed_with_copy(small_index, tiny_model, tmp_path):
    """A fresh index of the small photo set, built with a copy of the tiny model (the copy is then damaged)."""
    photos, _ = small_index
    model, index_dir = _copy(tiny_model, tmp_path, "model-for-cluster"), tmp_path / "cluster-index"
    result = run_cli(index_args(photos, index_dir, model))
    assert result.exit_code == 0, result.stderr
    assert run_cli(["cluster", "--index", index_dir, "--json"]).exit_code == 0
    return model, index_dir


@pytest.mark.parametrize("damage", ["metadata a list", "threshold out of range", "calibrations a list", "gone"])
def test_cluster_refuses_a_damaged_or_missing_model_in_one_line(small_index, tiny_model, tmp_path, damage):
    """cluster reads the index's model folder for its threshold: damaged or gone, it says so in one line
    instead of clustering at the default threshold, and the people stored so far stay."""
    model, index_dir = _indexed_with_copy(small_index, tiny_model, tmp_path)
    people = json.loads(run_cli(["people", "--index", index_dir, "--json"]).stdout)
    if damage == "gone":
        shutil.rmtree(model)
    elif damage == "calibrations a list":
        _edit_config(model, lambda c: c["metadata"].update(calibrations=[1, 2]))
    else:
        _edit_config(model, DAMAGED_CONFIGS[damage])
    assert_refused(run_cli(["cluster", "--index", index_dir]), str(model))
    assert json.loads(run_cli(["people", "--index", index_dir, "--json"]).stdout) == people
