"""A skill for tests of model calls on a running council (a team file names this module in ``skills``)."""

from __future__ import annotations

import time
from typing import Any

from actors.skills import Abandoned, PermanentFailure, Toolset, abandoned, progress, skill
from actors.tools.gated import Tools


@skill("think.slowly", toolset=Toolset.GATED)
def think_slowly(inputs: dict[str, Any], tools: Tools) -> dict[str, Any]:
    """Ask the model ``inputs['prompt']``, then, if the answer was new, hold the task ``inputs['hold']`` seconds
    before completing it: the window in which a test kills the agent after the call was recorded."""
    prompt = inputs.get("prompt")
    if not isinstance(prompt, str):
        raise PermanentFailure("think.slowly needs inputs {'prompt': text, 'hold': seconds}")
    answer = tools.models.ask(prompt, max_tokens=32)
    if not answer.replayed:
        until = time.monotonic() + float(inputs.get("hold", 0))
        while time.monotonic() < until:
            if abandoned():
                raise Abandoned("the attempt was given up")
            progress()
            time.sleep(0.1)
    return {"text": answer.text, "replayed": answer.replayed}
