"""``council skills``: every capability an agent can be given, where its skill comes from, and its toolset."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from cluster.cli_app import app, out


@app.command()
def skills(
    team: Annotated[str | None, typer.Option(help="Also load the skills modules this team file names, and check "
                                                  "the team against them. [env: COUNCIL_TEAM]")] = None,
    module: Annotated[list[str] | None, typer.Option("--module", help="A module of skills to load too "
                                                                      "(package.module; repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per capability.")] = False,
) -> None:
    """List every known capability: where its skill comes from, the toolset it gets, whether it acts and signs."""
    from actors.skills import SkillRegistry
    from cluster.settings import Settings
    from cluster.team import check_team, load_team

    settings = Settings.from_env(team=team)
    chosen = load_team(settings.team) if settings.team else None
    modules = [*(chosen.skills if chosen is not None else ()), *(module or [])]
    registry = SkillRegistry.load(modules)
    table = Table("capability", "toolset", "acts", "signs", "from", "what it does")
    for capability in registry:
        found = registry.get(capability)
        if as_json:
            out.print(json.dumps({"capability": capability, "toolset": found.toolset.value, "acts": found.acts,
                                  "signs": found.signs, "from": registry.origin(capability),
                                  "description": found.description}), markup=False)
            continue
        table.add_row(capability, found.toolset.value, "yes" if found.acts else "no", "yes" if found.signs else "no",
                      registry.origin(capability), found.description)
    if not as_json:
        out.print(table)
    if chosen is not None:
        check_team(chosen, registry, None, str(settings.team))
        out.print(f"ok: every capability of the team in {settings.team} has a skill")
