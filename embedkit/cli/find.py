import click

from embedkit.cli.common import emit, report_errors
from embedkit.cli.index import index_option, open_index
from embedkit.cli.people import face_line, json_option, printable


@click.command("find")
@click.argument("person")
@index_option
@json_option
@report_errors
def command(person, index_dir, as_json):
    """Every photo of PERSON (an id or a name)."""
    from embedkit.people import find_person

    with open_index(index_dir, create=False) as index:
        found = find_person(index, person)
    name = printable(found["name"]) if found["name"] else "(no name)"
    lines = [f"person {found['person_id']}: {name}, {found['n_photos']} photos"]
    lines.extend(face_line(photo) for photo in found["photos"])
    emit(as_json, found, "\n".join(lines))
