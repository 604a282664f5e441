import click

from embedkit.cli.common import emit


@click.command("backbones")
@click.option("--json", "as_json", is_flag=True)
def command(as_json):
    """List the backbones that --backbone accepts."""
    from embedkit.backbones import available_backbones, get_backbone

    rows = []
    for name in available_backbones():
        spec = get_backbone(name)
        rows.append({"name": name, "description": spec.description, "input_size": spec.preprocessing.size,
                     "output_dim": spec.output_dim, "threshold": spec.threshold,
                     "thresholds": dict(spec.thresholds)})
    width = max(len(r["name"]) for r in rows)
    emit(as_json, {"backbones": rows}, "\n".join(
        f"{r['name']:<{width}}  {r['input_size']:>3}px -> {r['output_dim']:>3}-d  {r['description']}" for r in rows))
