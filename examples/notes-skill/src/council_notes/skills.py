"""Two skills: one that writes a note through the gate, under the task's warrant, and a plain one that counts words."""

from __future__ import annotations

import re
from typing import Any

from actors.skills import PermanentFailure, Toolset, skill
from actors.tools.gated import Tools

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


@skill("notes.write", toolset=Toolset.GATED)
def write_note(inputs: dict[str, Any], tools: Tools) -> dict[str, Any]:
    """Write inputs['text'] to docs/notes/<inputs['name']>.md, through the gate."""
    name, text = inputs.get("name"), inputs.get("text")
    if not isinstance(name, str) or not NAME.match(name) or not isinstance(text, str):
        raise PermanentFailure("notes.write needs inputs {'name': 'lower-case-words', 'text': '...'}")
    written = tools.write_file(f"docs/notes/{name}.md", f"# {name}\n\n{text}\n")
    return {"path": written["path"], "sha256": written["sha256"]}


@skill("notes.count")
def count_words(inputs: dict[str, Any]) -> dict[str, Any]:
    """Count the words of inputs['text'] (a plain skill: it touches nothing, and needs no warrant)."""
    return {"words": len(str(inputs.get("text", "")).split())}
