"""The dispatcher's logic as plain classes: its state is a fold of the log, its decisions are intents.

No Ray here; :mod:`actors.dispatcher` is the thin Ray shell around :class:`Dispatch`.
"""

from actors.dispatch.decide import decide
from actors.dispatch.process import Dispatch
from actors.dispatch.settings import DispatchSettings
from actors.dispatch.state import AgentView, DispatchState, TaskView

__all__ = ["AgentView", "Dispatch", "DispatchSettings", "DispatchState", "TaskView", "decide"]
