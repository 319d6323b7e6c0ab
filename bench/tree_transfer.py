"""What carrying a request's tree between nodes costs (trees = "fetch"), against plain git on a shared disk.

A request's tree is made from ``--repo`` (default: this checkout, when it is a repository's root) as
the council makes it. Then, ``--runs`` times each, in the same run:

- a whole fetch: the depot bundles the tree's branch and an agent's copy is made from the bundle
  (every git command in the sandbox) — against ``git clone --no-hardlinks`` of the tree, unsandboxed;
- one commit back and forth: the copy's commit pushed to the depot (a fast-forward), and a second
  copy caught up with it — against ``git push`` and ``git pull --ff-only`` over the file system.

Usage::

    python bench/tree_transfer.py [--repo PATH] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support")]

from governance_support import BOX  # noqa: E402

from actors.depot import Depot  # noqa: E402
from actors.tools.bundles import pack, take  # noqa: E402
from actors.tools.checkout import prepare  # noqa: E402
from actors.tools.git import Identity  # noqa: E402
from actors.tools.workspace import Workspace  # noqa: E402

AGENT = Identity.agent("bench-1", "w-bench")
ENV = {**{k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "TZ")}, "GIT_CONFIG_NOSYSTEM": "1",
       "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, env={**ENV, "HOME": str(cwd)}, check=True, capture_output=True)


def timed(runs: int, once: Callable[[int], None]) -> float:
    """The median seconds of ``once(i)`` over ``runs`` runs."""
    took = []
    for i in range(runs):
        started = time.perf_counter()
        once(i)
        took.append(time.perf_counter() - started)
    return statistics.median(took)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=str(ROOT))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tree-transfer-") as scratch:
        tmp = Path(scratch)
        (tmp / "council").mkdir()
        prepare(Workspace(tmp / "council"), "r1", args.repo, box=BOX)
        canonical = tmp / "council" / "requests" / "r1"
        depot = Depot(tmp / "council", lambda: BOX)
        whole = depot.fetch("r1")

        ours = timed(args.runs, lambda i: take(tmp / f"copy-{i}" / "requests" / "r1", BOX, depot.fetch("r1")))
        peer = timed(args.runs, lambda i: git(tmp, "clone", "-q", "--no-hardlinks", str(canonical), f"clone-{i}"))
        print(f"whole fetch: {len(whole.bundle):,} bytes; depot {ours:.3f} s, git clone {peer:.3f} s "
              f"({ours / peer:.1f}x)")

        copy, behind = take(tmp / "a" / "r1", BOX, whole), take(tmp / "b" / "r1", BOX, whole)

        def round_trip(i: int) -> None:
            at = copy.head()
            copy.workspace.write(f"change-{i}.txt", f"change {i}\n".encode())
            copy.commit(f"change {i}", AGENT)
            depot.push("r1", pack(copy, at), at)
            take(behind.workspace.root, BOX, depot.fetch("r1", behind.head()))

        ours = timed(args.runs, round_trip)
        git(tmp, "clone", "-q", "--no-hardlinks", str(canonical), "peer-a")
        git(tmp, "clone", "-q", "--no-hardlinks", str(canonical), "peer-b")
        git(canonical, "config", "receive.denyCurrentBranch", "updateInstead")

        def peer_round_trip(i: int) -> None:
            (tmp / "peer-a" / f"peer-{i}.txt").write_text(f"change {i}\n")
            git(tmp / "peer-a", "add", "-A")
            git(tmp / "peer-a", "commit", "-qm", f"change {i}")
            git(tmp / "peer-a", "push", "-q", "origin", "HEAD")
            git(tmp / "peer-b", "pull", "-q", "--ff-only")

        peer = timed(args.runs, peer_round_trip)
        print(f"one commit pushed and caught up: depot {ours:.3f} s, git push + pull {peer:.3f} s ({ours / peer:.1f}x)")


if __name__ == "__main__":
    main()
