"""The ``[sandbox]`` table of a policy: how the commands agents run are confined, and within which limits.

Every command an agent's tools start (tests, linters, builds, health checks, git) runs in a
bubblewrap sandbox under the limits below, with no network unless the rule that allowed its
action says ``network = true``. ``mode = "off"`` runs commands as plain processes instead: an
explicit choice, printed as a warning by ``council policy check`` and recorded on every action it
affects. A field left out takes its default; the defaults are part of the policy's hash.

============  =========  ===============================================================
field         default    what it bounds
============  =========  ===============================================================
mode          bubblewrap "bubblewrap", or "off" (commands run unconfined)
cpu           "30m"      CPU time of each process (then SIGXCPU, and SIGKILL a second later)
memory        "8GiB"     address space of each process (allocations beyond it fail)
wall_time     "30m"      how long one command may run (its tool's own timeout, if shorter)
processes     512        processes and threads of one command, together
file_size     "1GiB"     the largest file a command may write (writes beyond it fail)
open_files    4096       files one process may hold open
============  =========  ===============================================================

"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from events.catalogue import Confinement
from governance.quantities import duration_text, parse_size, size_text, whole_seconds

Size = Annotated[int, BeforeValidator(parse_size)]
Seconds = Annotated[int, BeforeValidator(whole_seconds)]


class SandboxTable(BaseModel):
    """The ``[sandbox]`` table (see the module's table of fields)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["bubblewrap", "off"] = "bubblewrap"
    cpu: Seconds = 1800
    memory: Annotated[Size, Field(ge=64 << 20)] = 8 << 30
    processes: Annotated[int, Field(ge=8, strict=True)] = 512
    file_size: Size = 1 << 30
    open_files: Annotated[int, Field(ge=64, strict=True)] = 4096
    wall_time: Seconds = 1800

    def terms(self, *, network: bool, wall_time_s: float) -> Confinement:
        """The confinement of one command: these limits, ``network`` as its rule grants, and its wall time (its
        own timeout ``wall_time_s``, or the table's ``wall_time`` if that is shorter)."""
        return Confinement(sandbox=self.mode, network=network, cpu_s=self.cpu,
                           wall_time_s=min(float(wall_time_s), float(self.wall_time)),
                           address_space=self.memory, processes=self.processes, file_size=self.file_size,
                           open_files=self.open_files)

    def summary(self) -> str:
        """The limits in words: ``CPU 30m, 8GiB of memory per process; 512 processes; files up to 1GiB; ...``."""
        if self.mode == "off":
            return "commands run unconfined (no sandbox)"
        return (f"commands run in a bubblewrap sandbox: CPU {duration_text(self.cpu)} and {size_text(self.memory)} "
                f"of address space per process, {self.processes} processes, files up to {size_text(self.file_size)}, "
                f"{self.open_files} open files, {duration_text(self.wall_time)} of wall time per command")

    def warning(self) -> str | None:
        """What a report must say about this table, if anything: a warning when commands run unconfined."""
        if self.mode == "off":
            return ('WARNING: the policy turns the sandbox off ([sandbox] mode = "off"): commands run as plain '
                    "processes that can read the council's keys and log and reach the network")
        return None
