"""`query --html` and `people --html`: one self-contained file each."""

from __future__ import annotations

import re

from click.testing import CliRunner

from embedkit.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def assert_self_contained(page: str) -> None:
    assert page.startswith("<!doctype html>")
    assert "<script" not in page and "<link rel=\"stylesheet\"" not in page
    sources = re.findall(r'src="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/jpeg;base64,") for s in sources), sources[:3]
    assert not re.search(r'(href|src)="(https?:|/)', page)


def test_query_html_is_one_file_with_the_answer(att_index_dir, att_dir, tmp_path):
    out = tmp_path / "answer.html"
    result = run("query", att_dir / "s6" / "10.pgm", "--index", att_index_dir, "--html", out)
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert_self_contained(page)
    first = re.search(r'<li class="match (same|different)">.*?<div class="who">([^<]+)</div>', page, re.S)
    assert first.groups() == ("same", "s6")
    assert "10.pgm: 1 face found" in page and page.count('class="thumb"') == 5


def test_people_html_lists_everyone_with_escaped_names(people_index_dir, tmp_path):
    from embedkit.index import FaceIndex
    from embedkit.people import list_people, name_person

    with FaceIndex.open(people_index_dir) as index:
        people = list_people(index, samples=0)["people"]
        name_person(index, people[0]["person_id"], "<b>Bold</b> & Co")
    out = tmp_path / "people.html"
    result = run("people", "--index", people_index_dir, "--html", out)
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert_self_contained(page)
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; Co" in page and "<b>Bold" not in page
    assert page.count('<section class="person-row">') == len(people)


def test_unwritable_html_file_is_one_line(att_index_dir, att_dir, tmp_path):
    result = run("query", att_dir / "s6" / "10.pgm", "--index", att_index_dir, "--html", tmp_path / "no" / "x.html")
    assert result.exit_code == 1 and "cannot write the page" in result.output
    assert len(result.output.strip().splitlines()) == 1
