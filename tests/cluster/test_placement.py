"""Where on a Ray cluster each actor runs: the team file's placement of agents and of the local model's server,
validated with the file and line of a mistake, and the boot plan that pins the log's actors to the node of a SQLite
file but lets them run anywhere with PostgreSQL. No Ray cluster here: ``plan()`` is pure."""

from __future__ import annotations

from pathlib import Path

import pytest
from ray._common.ray_option_utils import validate_actor_options
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors import names
from actors.llm.config import ModelsConfigError, load_models
from actors.llm.local_provider import LocalProvider
from actors.llm.providers import make_provider
from actors.placement import Placement
from cluster.system import Keys, System, log_on_node, plan
from cluster.team import AgentSpec, TeamError, load_team, parse_team

TEAM = """
[[agents]]
name = "gpu"
role = "worker"
capabilities = ["noop"]
count = 2
num_cpus = 0.5
num_gpus = 1
resources = { ssd = 2, "accelerator_type:L4" = 0.25 }
labels = { zone = "in(eu-1, eu-2)", "example.com/pool" = "!spot", "ray.io/node-id" = "abc123" }

[[agents]]
name = "plain"
role = "worker"
capabilities = ["noop"]
"""

NODE = NodeAffinitySchedulingStrategy(node_id="ab" * 28, soft=False)
LOG_ACTORS = {names.STORE, names.COUNCIL, names.DISPATCHER, names.PROJECTOR, names.DETECTOR, names.LEARNER,
              names.HEALTH}


def test_an_agent_kind_is_placed_as_its_team_entry_says_and_ray_accepts_the_options() -> None:
    team = parse_team(TEAM, "team.toml")
    gpu_1, gpu_2, plain = team.members()
    assert gpu_1.placement() == gpu_2.placement() != plain.placement()
    options = gpu_1.ray_options()
    assert options == {"num_cpus": 0.5, "num_gpus": 1.0, "resources": {"ssd": 2.0, "accelerator_type:L4": 0.25},
                       "label_selector": {"zone": "in(eu-1, eu-2)", "example.com/pool": "!spot",
                                          "ray.io/node-id": "abc123"}}
    assert plain.ray_options() == {"num_cpus": 0.0}  # as before placement existed: Ray's defaults stand
    validate_actor_options(options, in_options=True)  # Ray's own checks agree

    specs = {s.name: s for s in plan(System.of("sqlite:///x.db", team), Keys(), NODE)}
    assert specs[names.agent("gpu-2")].options == {"max_concurrency": 5, **options}
    assert specs[names.agent("plain-1")].options == {"max_concurrency": 5, "num_cpus": 0.0}


@pytest.mark.parametrize(("line", "message"), [
    ("num_cpus = -1", r'field "num_cpus": must be a number of at least 0, not -1'),
    ("num_gpus = 0.00001", r'field "num_gpus": 1e-05 is finer than Ray keeps \(0.0001\)'),
    ("num_cpus = nan", r'field "num_cpus": must be a number of at least 0, not nan'),
    ("resources = { ssd = -2 }", r'field "resources"\[ssd\]: must be a number of at least 0, not -2'),
    ("resources = { CPU = 1 }", r'"resources"\[CPU\]: "CPU" is Ray\'s own resource; use num_cpus instead'),
    ("resources = { GPU = 1 }", r'"resources"\[GPU\]: "GPU" is Ray\'s own resource; use num_gpus instead'),
    ('resources = { "two words" = 1 }', r'"resources"\[two words\]: "two words" is not a resource name'),
    ('resources = { ssd = "lots" }', r'field "resources"\[ssd\]: input should be a valid number'),
    ('labels = { zone = "in(a,,b)" }', r'"labels"\[zone\]: "in\(a,,b\)" is not a label selector: give a value'),
    ('labels = { zone = "eu-" }', r'"labels"\[zone\]: "eu-" is not a label selector'),
    ('labels = { zone = "" }', r'"labels"\[zone\]: "" is not a label selector'),
    ('labels = { zone = 3 }', r'field "labels"\[zone\]: must be a string'),
    ('labels = { "-zone" = "a" }', r'"labels"\[-zone\]: "-zone" is not a label key'),
    ('labels = { "bad prefix!/zone" = "a" }', r'is not a label key'),
    (f'labels = {{ {"k" * 64} = "a" }}', r"is not a label key: at most 63"),
    ('labels = "zone=a"', r'field "labels": must be a table'),
    ("placement = 1", r'has an unknown field "placement"'),
])
def test_a_bad_placement_is_refused_naming_the_file_line_and_field(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "team.toml"
    path.write_text(TEAM.replace('name = "plain"', f'name = "plain"\n{line}'))
    with pytest.raises(TeamError, match=rf'{path} line \d+: agents\[1\] \("plain"\) .*{message}'):
        load_team(path)


def test_what_the_team_file_accepts_ray_accepts_and_what_ray_refuses_it_refuses() -> None:
    """The label and resource rules are written here, not imported from Ray's private modules: checked against
    Ray's own validation over the same examples, both ways."""
    accepted = [{"labels": {"zone": v}} for v in ("a", "!a", "in(a,b)", "!in(a, b)", "A.b_c-9", "x" * 63)] + [
        {"labels": {k: "a" for k in ("ray.io/node-id", "example.com/zone", "a" * 63)}},
        {"resources": {"node_a": 1, "accelerator_type:L4": 0.5}}, {"num_cpus": 0.0001}]
    refused = [{"labels": {"zone": v}} for v in ("-a", "in()", "in(a,", "!!a", "a!", "x" * 64, "in(a b)")] + [
        {"labels": {k: "a"}} for k in ("_zone", "a" * 64)] + [{"resources": {"CPU": 1}}, {"num_cpus": -1}]
    for fields in accepted:
        validate_actor_options(Placement.model_validate(fields).ray_options(), in_options=True)
    for fields in refused:
        with pytest.raises(ValueError):
            Placement.model_validate(fields)
        options = {"label_selector": fields["labels"]} if "labels" in fields else (
            {"resources": fields["resources"]} if "resources" in fields else fields)
        with pytest.raises(ValueError):
            validate_actor_options(options, in_options=True)
    with pytest.raises(ValueError):  # stricter than Ray, which takes an empty prefix for none
        Placement(labels={"/zone": "a"})


def test_a_sqlite_log_pins_the_actors_that_open_it_to_the_booting_node() -> None:
    system = System.of("sqlite:///x.db", [AgentSpec(agent_id="w-1")], home="/h", projections="/p.duckdb",
                       metrics_port=0, health={})
    specs = {s.name: s for s in plan(system, Keys(), NODE)}
    assert LOG_ACTORS | {names.EXPORTER} <= set(specs)
    for name in LOG_ACTORS | {names.EXPORTER}:
        assert specs[name].options.get("scheduling_strategy") is NODE, name
    assert "scheduling_strategy" not in specs[names.agent("w-1")].options
    watched = {s.name: s for s in specs[names.HEALTH].args[0]}  # the monitor recreates them where they were booted
    assert watched[names.DISPATCHER].options["scheduling_strategy"] is NODE
    assert log_on_node("sqlite:///x.db") and log_on_node("events.db")


@pytest.mark.parametrize("store", ["postgresql://council@db:5432/council", "postgres://db/council"])
def test_a_postgresql_log_lets_every_actor_move_to_another_node_but_prefers_the_booting_one(store: str) -> None:
    system = System.of(store, [AgentSpec(agent_id="w-1")], home="/h", projections="/p.duckdb", metrics_port=0,
                       health={})
    specs = {s.name: s for s in plan(system, Keys(), NODE)}
    watched = {s.name: s for s in specs[names.HEALTH].args[0]}
    for name in LOG_ACTORS | {names.EXPORTER}:
        for spec in (specs[name], watched.get(name, specs[name])):
            preferred = spec.options["scheduling_strategy"]
            assert isinstance(preferred, NodeAffinitySchedulingStrategy), name
            assert preferred.node_id == NODE.node_id and preferred.soft is True, name  # moves only when it is gone
    assert "scheduling_strategy" not in specs[names.agent("w-1")].options
    assert not log_on_node(store)


def test_a_plan_without_a_booting_node_pins_nothing() -> None:
    specs = plan(System(store="sqlite:///x.db", metrics_port=0), Keys(), None)
    assert not any("scheduling_strategy" in s.options for s in specs)


def test_the_local_model_server_goes_where_models_providers_local_says() -> None:
    config = load_models({"providers": {"local": {"num_gpus": 1, "resources": {"llm": 1},
                                                  "labels": {"ray.io/accelerator-type": "L4"}}}})
    provider = make_provider("local", config.settings("local"))
    assert isinstance(provider, LocalProvider)
    options = provider.placement.ray_options()
    assert options == {"num_cpus": 1.0, "num_gpus": 1.0, "resources": {"llm": 1.0},
                       "label_selector": {"ray.io/accelerator-type": "L4"}}
    validate_actor_options(options, in_options=True)
    default = make_provider("local", load_models({}).settings("local"))
    assert isinstance(default, LocalProvider)
    assert default.placement.ray_options() == {"num_cpus": 1.0}  # one CPU, any node: as before


@pytest.mark.parametrize(("local", "message"), [
    ({"num_gpus": -1}, r"\[models\] providers.local.num_gpus: Value error, must be a number of at least 0"),
    ({"resources": {"GPU": 1}}, r'providers.local.resources.GPU.\[key\]: Value error, "GPU" is Ray\'s own resource'),
    ({"labels": {"zone": "in("}}, r'providers.local.labels.zone: Value error, "in\(" is not a label selector'),
    ({"num_cpu": 1}, r"providers.local.num_cpu: Extra inputs are not permitted"),
])
def test_a_bad_model_server_placement_is_refused_naming_the_field(local: dict, message: str) -> None:
    with pytest.raises(ModelsConfigError, match=message):
        load_models({"providers": {"local": local}})
