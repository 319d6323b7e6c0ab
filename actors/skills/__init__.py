"""Skills: what an agent can do for a capability, registered as plug-ins (:mod:`actors.skills.registry`).

The public surface for a skill's author::

    from actors.skills import PermanentFailure, Toolset, skill

    @skill("notes.write", toolset=Toolset.GATED)
    def write_note(inputs, tools):
        \"\"\"Write inputs['text'] to notes/<inputs['name']>.md, through the gate.\"\"\"
        return tools.write_file(f"notes/{inputs['name']}.md", inputs["text"])
"""

from actors.skills.registry import GROUP, SkillRegistry
from actors.skills.skill import (
    Abandoned,
    PermanentFailure,
    Skill,
    SkillError,
    Toolset,
    abandoned,
    failure_kind,
    progress,
    reporting,
    skill,
)

__all__ = ["GROUP", "Abandoned", "PermanentFailure", "Skill", "SkillError", "SkillRegistry", "Toolset", "abandoned",
           "failure_kind", "progress", "reporting", "skill"]
