import click

from embedkit.cli.common import emit, html_option, report_errors, write_page
from embedkit.cli.index import index_option, open_index
from embedkit.textsafe import printable


def json_option(func):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(func)


def _index(index_dir):
    """The subcommand's --index, else the one given to `people` itself."""
    given = click.get_current_context().obj or {}
    return open_index(index_dir or given.get("index_dir"), create=False)


def person_line(person: dict) -> str:
    name = printable(person["name"]) if person.get("name") else "(no name)"
    return f"person {person['person_id']}: {name}, {person['n_faces']} faces"


def face_line(face: dict) -> str:
    x, y, w, h = face["box"]
    return f"  face {face['face_id']}: {printable(face['path'])} at ({x:.0f}, {y:.0f}, {w:.0f}x{h:.0f})"


@click.group("people", invoke_without_command=True)
@index_option
@click.option("--all-faces", is_flag=True, help="List every face of every person, not a few samples.")
@json_option
@html_option
@click.pass_context
@report_errors
def command(ctx, index_dir, all_faces, as_json, html):
    """List the people in the index, largest first (`embedkit cluster` finds them)."""
    ctx.obj = {"index_dir": index_dir}  # `people --index DIR name ...` means that index too
    if ctx.invoked_subcommand is not None:
        return
    from embedkit.people import list_people

    with open_index(index_dir, create=False) as index:
        listed = list_people(index, all_faces=all_faces)
        if html:
            from embedkit.server.pages import people_page

            write_page(html, people_page(index), as_json)
    lines = []
    for person in listed["people"]:
        lines.append(person_line(person))
        lines.extend(face_line(face) for face in person["faces"])
    lines.append(f"{len(listed['people'])} people; {listed['unassigned']} faces belong to no one, "
                 f"{listed['low_quality']} below the quality settings")
    emit(as_json, listed, "\n".join(lines))


@command.command("name")
@click.argument("person")
@click.argument("name")
@index_option
@json_option
@report_errors
def name_command(person, name, index_dir, as_json):
    """Name PERSON (an id or a name) NAME."""
    from embedkit.people import name_person

    with _index(index_dir) as index:
        result = name_person(index, person, name)
    emit(as_json, result, person_line(result))


@command.command("merge")
@click.argument("people", nargs=-1, required=True)
@index_option
@json_option
@report_errors
def merge_command(people, index_dir, as_json):
    """Merge PEOPLE (ids or names) into the first one given."""
    from embedkit.people import merge_people

    with _index(index_dir) as index:
        result = merge_people(index, people)
    emit(as_json, result, f"merged {', '.join(map(str, result['merged']))} into {person_line(result)}")


@command.command("move")
@click.argument("face_ids", nargs=-1, required=True, type=int)
@click.option("--to", "to", required=True, help="A person id or name, or 'new' for a new person.")
@index_option
@json_option
@report_errors
def move_command(face_ids, to, index_dir, as_json):
    """Put faces FACE_IDS into a person (they stay there)."""
    from embedkit.people import move_faces

    with _index(index_dir) as index:
        result = move_faces(index, face_ids, to)
    emit(as_json, result, f"moved {len(result['moved'])} faces to {person_line(result)}")


@command.command("reject")
@click.argument("face_ids", nargs=-1, required=True, type=int)
@click.option("--from", "person", required=True, help="The person (id or name) they do not belong to.")
@index_option
@json_option
@report_errors
def reject_command(face_ids, person, index_dir, as_json):
    """Take faces FACE_IDS out of a person for good (clustering never puts them back)."""
    from embedkit.people import reject_faces

    with _index(index_dir) as index:
        result = reject_faces(index, face_ids, person)
    emit(as_json, result, f"{result['removed']} faces taken out of {person_line(result)}; "
                          f"{len(result['rejected'])} will never rejoin it")
