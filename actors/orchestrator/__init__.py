"""The orchestrator: a request in plain words becomes a validated plan, the plan becomes warranted work for the
team, and a per-request actor follows it to a report.

* :mod:`actors.orchestrator.validate` — the plan schema the planner model answers in, the team's roster, and the
  checks a plan passes before anything runs (pure);
* :mod:`actors.orchestrator.adopt` — a validated plan as the request's tasks and the phase grants (pure);
* :mod:`actors.orchestrator.planner` — the ``plan.write`` skill: asks the model, validates, sends the problems back
  once;
* :mod:`actors.orchestrator.architect` — the ``design.write`` skill: the design note later phases read;
* :mod:`actors.orchestrator.process` — what the orchestrator decides, folded from the request's events (pure);
* :mod:`actors.orchestrator.actor` — the Ray shell, one per request;
* :mod:`actors.orchestrator.render` — a plan as a table and a Mermaid diagram.
"""
