"""The dispatcher's logic as plain classes: its state is a fold of the log, its decisions are events.

No Ray here; :mod:`actors.dispatcher` is the thin Ray shell around it.
"""

from actors.dispatch.decide import Append, decide
from actors.dispatch.settings import DispatchSettings
from actors.dispatch.state import AgentView, DispatchState, TaskView

__all__ = ["Append", "AgentView", "DispatchSettings", "DispatchState", "TaskView", "decide"]
