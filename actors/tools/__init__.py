"""What agents do to the world: files in a workspace, commands, local deployments — each behind the gate.

Every effect goes through :class:`actors.tools.gated.Tools`, which asks the gate first and
records the outcome after; the plain effects (``workspace.py``, ``commands.py``, ``deploy.py``)
are confined to the council's workspace and never build a shell string from input.
"""
