"""The people commands on a real AT&T index (s1..s35, facenet, --no-detect)."""

import json
import shutil

from click.testing import CliRunner

from embedkit.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def run_json(*args):
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_cluster_people_name_find_merge_move_reject(copy_att_index):
    index = copy_att_index
    report = run_json("cluster", "--index", index)
    assert report["considered"] == 350 and report["people"] >= 34
    listed = run_json("people", "--index", index)
    assert set(listed["people"][0]) == {"person_id", "name", "n_faces", "faces"}
    assert set(listed["people"][0]["faces"][0]) >= {"face_id", "path", "paths", "box"}
    first, second = listed["people"][0], listed["people"][1]
    named = run_json("people", "name", first["person_id"], "Ann Smith", "--index", index)
    assert named["name"] == "Ann Smith"
    found = run_json("find", "ann smith", "--index", index)
    assert found["n_photos"] == first["n_faces"] and found["photos"][0]["path"].endswith(".pgm")
    text = run("people", "--index", index).output
    assert "Ann Smith" in text and "people;" in text
    merged = run_json("people", "merge", "Ann Smith", second["person_id"], "--index", index)
    assert merged["n_faces"] == first["n_faces"] + second["n_faces"]
    face = second["faces"][0]["face_id"]
    rejected = run_json("people", "reject", face, "--from", "Ann Smith", "--index", index)
    assert rejected["removed"] == 1 and rejected["n_faces"] == merged["n_faces"] - 1
    moved = run_json("people", "move", face, "--to", "new", "--index", index)
    assert moved["n_faces"] == 1
    assert run_json("people", "--index", index, "--all-faces")["people"][0]["n_faces"] == merged["n_faces"] - 1
    missing = run("find", "Nobody", "--index", index)
    assert missing.exit_code == 1 and missing.output.count("\n") == 1 and "no person 'Nobody'" in missing.output


def test_query_all_returns_the_persons_faces(copy_att_index, att_dir, tmp_path):
    index = copy_att_index
    run_json("cluster", "--index", index)
    faces = run_json("query", att_dir / "s5" / "1.pgm", "--all", "--index", index)["results"][0]["faces"]
    matches = faces[0]["matches"]
    same = [m for m in matches if m["same"]]
    assert len(same) == len(matches)  # --all: only faces at or above the threshold
    assert sum(m["label"] == "s5" for m in same) >= 9 and sum(m["label"] != "s5" for m in same) <= 1
    assert faces[0]["person"] is not None and not faces[0]["unknown"]
    assert all(m["person"]["person_id"] == faces[0]["person"]["person_id"] for m in same if m["label"] == "s5")
    # a person the index has never seen: top-k still lists the nearest, but no one is the same person
    stranger = run_json("query", att_dir / "s38" / "1.pgm", "-k", "3", "--index", index, "--threshold", "0.7")["results"][0]["faces"]
    assert stranger[0]["unknown"] and not any(m["same"] for m in stranger[0]["matches"])
    assert len(stranger[0]["matches"]) == 3


def test_calibrate_stores_a_threshold_the_index_then_uses(copy_att_index, att_dir, tmp_path):
    data = tmp_path / "mine"
    for n in range(36, 41):  # people the index does not hold
        shutil.copytree(att_dir / f"s{n}", data / f"s{n}")
    report = run_json("calibrate", "--data", data, "--far", "0.005", "--folds", "2", "--index", copy_att_index)
    assert report["setting"] == "cc1" and report["n_genuine"] == 5 * 45 and report["n_impostor"] == 10 * 100
    assert report["all_pairs"]["false_accepts"] <= 5
    assert "warning" in report  # 5 false accepts of 1,000 pairs: too few to trust
    faces = run_json("query", att_dir / "s5" / "1.pgm", "-k", "1", "--index", copy_att_index)["results"][0]["faces"]
    assert faces[0]["threshold"] == round(report["threshold"], 4) and faces[0]["calibrated"]
