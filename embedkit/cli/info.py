import click

from embedkit.cli.common import emit, report_errors


@click.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@report_errors
def command(as_json):
    """Versions, where weights, conversions and indexes live, and each index's model and counts."""
    from embedkit.info import machine_info

    info = machine_info()
    lines = ["versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v)]
    lines += [f"home: {info['home']}", f"default index: {info['default_index']}", f"weights: {info['weights_dir']}"]
    for w in info["weights"]:
        lines.append(f"  {w['backbone']}: {'present' if w['present'] else 'not fetched yet'} ({w['path']})")
    lines.append(f"fast-runtime conversions: {len(info['conversions'])}")
    for c in info["conversions"]:
        backend = f" ({c['backend']})" if c.get("backend") else ""
        lines.append(f"  {c.get('model_id') or c.get('error')}{backend}: {c['path']}")
    lines.append(f"indexes: {len(info['indexes'])}")
    for ix in info["indexes"]:
        if "error" in ix:
            lines.append(f"  {ix['index']}: {ix['error']}")
            continue
        lines.append(f"  {ix['index']}: {ix.get('faces', 0)} faces in {ix.get('files', 0)} files; model "
                     f"{ix['model_id']} ({ix['embedding_dim']}-d); faces {ix['extractor']}; {ix['factory']}")
    emit(as_json, info, "\n".join(lines))
