"""Nothing that can run code is loaded from an index or model folder."""

from __future__ import annotations

import pickle
import re
import shutil
from pathlib import Path

import numpy as np

import embedkit

PACKAGE = Path(embedkit.__file__).parent

# Calls that can execute code stored in a file.
UNSAFE = {
    "pickle": re.compile(r"\b(c?pickle|dill|cloudpickle|joblib|shelve|marshal)\.(load|loads|Unpickler)\b"
                         r"|^\s*(import|from)\s+(c?pickle|dill|cloudpickle|joblib|shelve)\b", re.M),
    "allow_pickle": re.compile(r"allow_pickle\s*=\s*True"),
    "keras model loading": re.compile(r"\bload_model\s*\(|saved_model\.load\s*\(|safe_mode\s*=\s*False"),
    "torch.load": re.compile(r"\btorch\.load\s*\("),
    "eval/exec": re.compile(r"(?<![\w.])(eval|exec)\s*\("),
}


def test_no_code_executing_loaders_in_the_package():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for what, pattern in UNSAFE.items():
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {what}: {match.group(0).strip()}")
    assert not found, "\n".join(found)


class _Trap:
    """Unpickling this writes a marker file: proof that a pickle was loaded."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pickle was loaded"))


def test_pickles_in_model_and_index_folders_are_never_loaded(tiny_model, att_dir, tmp_path):
    from embedkit.encoder import Encoder
    from embedkit.index import FaceIndex

    from .conftest import run_cli

    marker = tmp_path / "marker"
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    photos, index_dir = tmp_path / "photos", tmp_path / "index"
    shutil.copytree(att_dir / "s1", photos)
    assert run_cli(["index", photos, "--index", index_dir, "--model", model, "--no-detect"]).exit_code == 0
    trap = pickle.dumps(_Trap(marker))
    for folder in (model, index_dir):
        for name in ("model.pkl", "embedkit_model.pkl", "metadata.pkl", "vectors.npy", "model.keras",
                     "index.pickle"):
            (folder / name).write_bytes(trap)
    np.save(index_dir / "vectors-0.npy", np.array([_Trap(marker)], dtype=object), allow_pickle=True)

    encoder = Encoder.load(model)
    with FaceIndex.open(index_dir) as index:
        assert index.verify()["ok"]
        ids, vectors = index.store.all_vectors(index.dim)
        assert index.search(vectors[:1], k=1)[0][0]["face_id"] == ids[0]
    assert encoder.embedding_dim == 128
    query = run_cli(["query", photos / "1.pgm", "--index", index_dir, "--json"])
    assert query.exit_code == 0
    assert not marker.exists()
