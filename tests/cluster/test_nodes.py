"""A council across Ray nodes, on one machine: a head and two worker nodes (``ray.cluster_utils.Cluster``), node
labels ``zone=a`` and ``zone=b`` on the workers, and a PostgreSQL log, so no actor of the system is pinned to a node.

The agents are placed by their team entries' label selectors: ``alpha`` on zone a, ``beta`` on zone b, ``mover``
on either (``in(a,b)``). The module's own Ray cluster, not the shared ``ray_instance``: it starts and stops nodes.

What Ray does when a worker node is killed, as measured here: it declares the node dead once its health checks
fail (about 15 s with Ray's defaults) and starts each detached agent that lived there (``max_restarts=-1``)
again on a node its placement allows; the dispatcher has by then taken back the dead agent's leases, and the
restarted agent runs the tasks again — each completes once. The tests run in order: the last replaces the
cluster, as a lost head node does.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import ray
from postgres_server import PostgresServer
from ray.cluster_utils import Cluster

from actors import names
from actors.llm.config import load_models
from actors.llm.local_provider import LocalProvider
from actors.llm.providers import make_provider
from actors.pipeline.results import BuildResult
from cluster.driver import Council
from cluster.pipeline import PipelineTimedOut, Run, follow, start_ci
from cluster.report import report
from cluster.settings import DEFAULT_TEAM, Settings
from cluster.system import System, boot, shutdown
from cluster.team import AgentSpec, load_team
from events import CouncilError
from events.catalogue import TaskCompleted, TaskSpec, TaskStarted
from governance import provenance
from governance.keys import Keyring

pytestmark = pytest.mark.slow

ZONES = ("a", "b")
SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sample-service"
DISPATCH = {"backoff_base": 0.05, "lease": 6.0, "heartbeat_timeout": 3.0}
"""Short leases: a task whose agent died with its node is taken back within seconds."""


def worker(zone: str) -> dict:
    """The arguments of ``Cluster.add_node`` for a worker node of ``zone``."""
    return {"num_cpus": 1, "labels": {"zone": zone}, "resources": {f"zone_{zone}": 1}}


@dataclass
class Nodes:
    """The module's Ray cluster, its worker nodes by zone, and the council running on it."""

    cluster: Cluster
    workers: dict[str, object]
    council: Council


TEAM = [
    AgentSpec(agent_id="alpha-1", capabilities=("echo", "noop"), slots=2, labels={"zone": "a"}),
    AgentSpec(agent_id="beta-1", capabilities=("echo", "noop"), slots=2, labels={"zone": "b"}),
    AgentSpec(agent_id="mover-1", capabilities=("sleep",), slots=4, labels={"zone": "in(a,b)"}),
]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nodes]:
    home = tmp_path_factory.mktemp("nodes")
    # Ray's files under a directory of this module's: a Cluster writes its address where `ray.init("auto")` looks
    # (<RAY_TMPDIR>/ray/ray_current_cluster), and a council started elsewhere on this machine must not join it.
    # Short, under /tmp: the nodes' socket paths must fit in 107 characters.
    ray_files = tempfile.mkdtemp(prefix="rn", dir="/tmp")
    with pytest.MonkeyPatch.context() as env, PostgresServer.start() as server:
        env.setenv("RAY_TMPDIR", ray_files)
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "labels": {"zone": "head"},
                                                                "include_dashboard": False})
        try:
            workers = {zone: cluster.add_node(**worker(zone)) for zone in ZONES}
            cluster.wait_for_nodes()
            ray.init(address=cluster.address, namespace=names.NAMESPACE, log_to_driver=False,
                     configure_logging=False)
            for approver in ("alice", "bob"):  # before the policy is adopted: production waits for them
                Keyring(home / "council" / "keys").new(approver)
            settings = Settings(store=server.new_database(), projections=str(home / "projections.duckdb"),
                                home=str(home / "council"), metrics_port=None, health=False)
            running = Nodes(cluster, workers, Council.start(settings, team=TEAM, dispatch=DISPATCH))
            try:
                yield running
                shutdown()
            finally:
                cluster = running.cluster  # the head-loss test replaces the cluster: the one running now is shut down
        finally:
            ray.shutdown()
            cluster.shutdown()
            shutil.rmtree(ray_files, ignore_errors=True)


def node_of(actor_name: str) -> str:
    """The id of the node the actor ``actor_name`` runs on, from Ray's actor table (the state API needs a
    dashboard this cluster does not run)."""
    handle = ray.get_actor(actor_name, namespace=names.NAMESPACE)
    found = ray._private.state.actors(handle._actor_id.hex())
    return str(found["Address"]["NodeID"])


def zone_of(node_id: str) -> str:
    [node] = [n for n in ray.nodes() if n["NodeID"] == node_id]
    return str(node["Labels"].get("zone", ""))


def did(council: Council, task_ids: list[str], kind: type) -> list:
    """The events of ``kind`` (task.started, task.completed…) of ``task_ids``, in log order."""
    wanted = set(task_ids)
    return [e.payload for e in council.store.read_all(1, 1_000_000, [kind.type_name])
            if e.payload.task_id in wanted]


def test_a_requests_tasks_run_on_agents_on_two_nodes(nodes: Nodes) -> None:
    council = nodes.council
    where = {agent: zone_of(node_of(names.agent(agent))) for agent in ("alpha-1", "beta-1")}
    assert where == {"alpha-1": "a", "beta-1": "b"}  # each as its label selector says
    _, tasks = council.request("spread", [TaskSpec(capability="echo", inputs={"n": i}) for i in range(12)])
    assert set(council.wait(tasks, timeout=60).values()) == {"completed"}
    completed = did(council, tasks, TaskCompleted)
    assert Counter(c.task_id for c in completed) == dict.fromkeys(tasks, 1)
    by_agent = Counter(c.agent_id for c in completed)
    assert set(by_agent) == {"alpha-1", "beta-1"}, by_agent  # both nodes worked on the request
    assert {where[c.agent_id] for c in completed} == {"a", "b"}


def test_killing_a_worker_node_mid_request_moves_its_agent_and_every_task_completes_once(nodes: Nodes) -> None:
    council = nodes.council
    lost = zone_of(node_of(names.agent("mover-1")))
    [kept] = [z for z in ZONES if z != lost]
    tasks = [council.submit("sleep", {"seconds": 3.0}) for _ in range(4)]
    deadline = time.monotonic() + 30
    while len({s.task_id for s in did(council, tasks, TaskStarted)}) < len(tasks):
        assert time.monotonic() < deadline, "the mover never started its tasks"
        time.sleep(0.2)
    killed_at = time.monotonic()
    nodes.cluster.remove_node(nodes.workers.pop(lost), allow_graceful=False)  # its processes, killed mid-task

    assert set(council.wait(tasks, timeout=90).values()) == {"completed"}
    moved_in = time.monotonic() - killed_at
    assert zone_of(node_of(names.agent("mover-1"))) == kept  # Ray started it again on the surviving node
    completed = did(council, tasks, TaskCompleted)
    assert Counter(c.task_id for c in completed) == dict.fromkeys(tasks, 1)  # each exactly once
    assert all(c.attempt >= 2 for c in completed)  # a later attempt: the first died with the node
    print(f"zone {lost} killed: its agent's 4 tasks done on zone {kept} {moved_in:.1f} s later")

    nodes.workers[lost] = nodes.cluster.add_node(**worker(lost))  # the cluster whole again for the next test
    nodes.cluster.wait_for_nodes()


def placed(team: list[AgentSpec], zones: list[str]) -> list[AgentSpec]:
    """``team`` with agent ``i`` on zone ``zones[i % len(zones)]``."""
    return [m.model_copy(update={"labels": {"zone": zones[i % len(zones)]}}) for i, m in enumerate(team)]


def replace_agents(nodes: Nodes, team: list[AgentSpec]) -> None:
    """Stop ``team``'s agents, if running, and start them again placed as ``team`` says (what changing the team
    file and `council up` again does)."""
    gone = shutdown([names.agent(m.agent_id) for m in team])
    deadline = time.monotonic() + 30
    while any(_named(name) for name in gone):  # a killed actor's name is free only once Ray has it dead
        assert time.monotonic() < deadline, f"{gone} never went"
        time.sleep(0.1)
    Council.start(nodes.council.settings, team=[*TEAM, *team], dispatch=DISPATCH)


def _named(name: str) -> bool:
    try:
        ray.get_actor(name, namespace=names.NAMESPACE)
    except ValueError:
        return False
    return True


def shipped(council: Council, repo: Path) -> tuple[Run, dict[str, str], list[tuple[str, str]], str]:
    """Run the pipeline on ``repo`` to staging; its run, the node zone of the agent of each step, the build's
    artefacts (name, sha256) and its provenance's subjects and git commit."""
    run = start_ci(council, repo)
    try:
        follow(council, run, lambda line: None, timeout=150)
    except PipelineTimedOut:
        pytest.fail(report(council, run).text())
    found = report(council, run)
    assert found.outcome == "awaiting approval", found.text()
    built = found.results["build"]
    assert isinstance(built, BuildResult) and built.reproducible and built.provenance is not None
    envelope = json.loads((run.tree / built.provenance).read_text())
    statement = provenance.verify(envelope, Keyring(Path(council.settings.absolute().home) / "keys").public(
        "agent-builder-1"))
    subjects = sorted((s["name"], s["digest"]["sha256"]) for s in statement["subject"])
    assert subjects == sorted((a.name, a.sha256) for a in built.artefacts)
    commit = statement["predicate"]["buildDefinition"]["resolvedDependencies"][0]["digest"]["gitCommit"]
    agents = {c.task_id: c.agent_id for c in did(council, list(run.tasks.values()), TaskCompleted)}
    zones = {step: zone_of(node_of(names.agent(agents[task]))) for step, task in run.tasks.items()
             if task in agents}
    return run, zones, subjects, commit


def test_the_pipeline_on_agents_over_two_nodes_ships_what_it_ships_on_one(nodes: Nodes,
                                                                          tmp_path: Path) -> None:
    """The same commit through the pipeline twice: its agents all on node a, then spread over nodes a and b.
    The artefacts, their digests and the provenance's subjects are the same. Here the nodes share this machine's
    disk, so each run's tree is seen by every agent; on separate machines the trees come from the request's
    repository instead."""
    repo = tmp_path / "sample-service"
    shutil.copytree(SAMPLE, repo, ignore=shutil.ignore_patterns("__pycache__", "dist", ".pytest_cache"))
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "the sample service"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    pipeline = load_team(DEFAULT_TEAM).members(leave_out={"worker", "orchestrator", "architect", "coder",
                                                          "assistant"})

    replace_agents(nodes, placed(pipeline, ["a"]))
    one, on_one, subjects_one, commit_one = shipped(nodes.council, repo)
    assert set(on_one.values()) == {"a"}, on_one

    replace_agents(nodes, placed(pipeline, ["a", "b"]))
    two, on_two, subjects_two, commit_two = shipped(nodes.council, repo)
    assert set(on_two.values()) == {"a", "b"}, on_two  # the steps were done on both nodes

    assert one.request_id != two.request_id and one.tree != two.tree
    assert subjects_two == subjects_one and len(subjects_one) == 2  # the wheel and the sdist, byte for byte
    assert commit_one == commit_two == head


def test_an_agent_no_node_can_take_is_named_by_boot_instead_of_a_boot_that_never_returns(nodes: Nodes) -> None:
    settings = nodes.council.settings.absolute()
    nowhere = AgentSpec(agent_id="nowhere-1", capabilities=("noop",), labels={"zone": "c"}, resources={"zone_a": 1})
    system = System.of(settings.store, [*TEAM, nowhere], projections=settings.projections, home=settings.home,
                       workspace=settings.workspace, dispatch=DISPATCH)
    started = time.monotonic()
    try:
        with pytest.raises(CouncilError, match=r"1 of the council's actors did not start within 3 s.*"
                                               r"agent:nowhere-1 needs resources \{'zone_a': 1.0\}, labels "
                                               r"\{'zone': 'c'\}\. Start a node that has them"):
            boot(system, ready_within=3)
        assert time.monotonic() - started < 15
    finally:
        shutdown([names.agent("nowhere-1")])
    assert ray.get(ray.get_actor(names.agent("alpha-1"), namespace=names.NAMESPACE).pid.remote(), timeout=30)


def test_the_local_model_server_runs_on_the_node_models_providers_local_names(nodes: Nodes) -> None:
    config = load_models({"providers": {"local": {"labels": {"zone": "b"}, "resources": {"zone_b": 0.5}}}})
    provider = make_provider("local", config.settings("local"))
    assert isinstance(provider, LocalProvider)
    server = provider.server("default")
    try:
        served = ray.get(server.ready.remote(), timeout=120)
        assert zone_of(node_of(names.model_server(served["path"]))) == "b"
    finally:
        ray.kill(server, no_restart=True)


def test_a_lost_head_node_loses_every_actor_and_council_up_on_a_new_cluster_rebuilds_them_from_the_log(
        nodes: Nodes) -> None:
    """Without Ray's GCS fault tolerance (an external Redis) the head node's loss ends the cluster, and every
    detached actor with it. The log, in PostgreSQL, is not lost: starting the council on a new cluster rebuilds
    every actor and read model from it, and work goes on. (Last in the module: it replaces the cluster.)"""
    council = nodes.council
    tasks = "SELECT task_id, status, agent_id FROM tasks ORDER BY task_id"
    before, head = council.sql(tasks).rows, council.store.head()
    assert len(before) >= 16 and head > 100

    ray.shutdown()
    nodes.cluster.shutdown()  # the head node and every node with it, as when the head is lost
    nodes.cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "labels": {"zone": "head"},
                                                                  "include_dashboard": False})
    nodes.workers = {zone: nodes.cluster.add_node(**worker(zone)) for zone in ZONES}
    nodes.cluster.wait_for_nodes()
    ray.init(address=nodes.cluster.address, namespace=names.NAMESPACE, log_to_driver=False, configure_logging=False)
    with pytest.raises(ValueError):
        ray.get_actor(names.STORE, namespace=names.NAMESPACE)  # nothing of the old cluster is left

    again = nodes.council = Council.start(council.settings, team=TEAM, dispatch=DISPATCH)  # `council up`
    assert again.store.head() >= head
    assert again.sql(tasks).rows == before  # every task where it stood, folded again from the log
    [task] = [again.submit("echo", {"after": "the head was lost"})]
    assert again.wait([task], timeout=60) == {task: "completed"}
