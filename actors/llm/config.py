"""Which model each role thinks with, what each costs, and where each provider is: the team file's ``[models]``.

::

    [models]
    default = "openai:gpt-4.1-mini"            # COUNCIL_MODEL, if set, wins
    repairs = 1                                # re-asks of an answer that does not fit its schema
    retries = 3                                # tries of one call through transient failures

    [models.roles]
    reviewer = "anthropic:claude-sonnet-4-5"

    [models.prices."openai:gpt-4.1-mini"]      # US dollars per million tokens
    input = 0.40
    output = 1.60
    context = 1047576

    [models.fallback]                          # tried in order when a model fails transiently for good
    "openai:gpt-4.1-mini" = ["ollama:qwen2.5-coder:7b"]

    [models.providers.ollama]
    base_url = "http://gpu-box:11434"
    timeout = "10m"
    stall_after = "60s"

    [models.providers.local]                   # the model-server actor of local:… models
    num_gpus = 1                               # where it runs: num_cpus (default 1), num_gpus,
    labels = { "ray.io/accelerator-type" = "L4" }  # resources, labels (actors.placement)

A model is named ``provider:model`` (the model's own name may hold colons: ``ollama:qwen2.5-coder:7b``).
The providers' keys never appear here: each comes from its SDK's own variable (``OPENAI_API_KEY``,
``ANTHROPIC_API_KEY``) in the agents' environment.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from actors.placement import Amount, Placement
from events import CouncilError
from governance.quantities import parse_duration

PROVIDERS = ("openai", "anthropic", "ollama", "local")
"""The providers a model may name."""

ModelName = Annotated[str, Field(min_length=3, max_length=200)]


class ModelsConfigError(CouncilError):
    """The ``[models]`` table, or ``COUNCIL_MODEL``, is not valid."""


def split(model: str) -> tuple[str, str]:
    """``provider:model`` as (provider, model); :class:`ModelsConfigError` naming what is wrong otherwise."""
    provider, sep, name = model.partition(":")
    if not sep or not name:
        raise ModelsConfigError(f"{model!r} does not name a provider: write provider:model, e.g. "
                                "openai:gpt-4.1-mini, anthropic:claude-sonnet-4-5, ollama:qwen2.5-coder:7b")
    if provider not in PROVIDERS:
        raise ModelsConfigError(f"{model!r}: {provider!r} is not a provider; use one of {', '.join(PROVIDERS)}")
    return provider, name


def as_environment(model: str) -> str:
    """The name a model goes by in the policy, as the environment of its ``llm.call``: lowercase, ``:`` and ``/``
    as ``.``, anything else a name may not hold as ``-`` (``ollama:qwen2.5-coder:7b`` is
    ``ollama.qwen2.5-coder.7b``), so a rule's ``environments = ["ollama.*"]`` says which models a role may use."""
    lowered = model.lower().replace(":", ".").replace("/", ".")
    return re.sub(r"[^a-z0-9._-]", "-", lowered)[:128]


class Price(BaseModel):
    """What a model costs, in US dollars per million tokens, and how many tokens its context holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(0.0, ge=0)
    output: float = Field(0.0, ge=0)
    context: int | None = Field(None, ge=1)

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """The price of a call that read ``input_tokens`` and wrote ``output_tokens``."""
        return (input_tokens * self.input + output_tokens * self.output) / 1_000_000


class ProviderSettings(Placement):
    """Where a provider is and how long a call may take (its key comes from the SDK's own variable); for ``local``,
    where on the cluster its model-server actor runs (:class:`Placement`: one CPU, any node, unless set)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str | None = None
    timeout: float = 600.0
    """Seconds one call may take in all."""
    stall_after: float = 60.0
    """Seconds a streamed reply may stay silent before it is cut."""
    threads: int = Field(1, ge=1, le=256)
    """``local`` only: the threads llama.cpp generates with (one is fastest on a busy two-core machine)."""
    context: int = Field(2048, ge=256, le=1_048_576)
    """``local`` only: the context window the model is loaded with, in tokens."""
    num_cpus: Amount = 1.0
    """``local`` only: the CPUs Ray reserves for the model-server actor."""
    # ``local`` only, as well: num_gpus (the actor goes to a node that has them), resources and labels
    # (actors.placement): where on the cluster the model-server actor runs.

    @field_validator("timeout", "stall_after", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value


class ModelsConfig(BaseModel):
    """The ``[models]`` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: ModelName | None = None
    roles: dict[str, ModelName] = {}
    prices: dict[ModelName, Price] = {}
    fallback: dict[ModelName, list[ModelName]] = {}
    providers: dict[str, ProviderSettings] = {}
    repairs: int = Field(1, ge=0, le=5)
    retries: int = Field(3, ge=1, le=10)

    @field_validator("default", "roles", "prices", "fallback")
    @classmethod
    def _named(cls, value: Any, info: ValidationInfo) -> Any:
        """Every model named (the default, each role's, each priced, each in a fallback chain) is provider:model."""
        match info.field_name, value:
            case "roles", dict():
                names = list(value.values())
            case "prices", dict():
                names = list(value)
            case "fallback", dict():
                names = [*value, *(m for chain in value.values() for m in chain)]
            case _:
                names = [value] if isinstance(value, str) else []
        for name in names:
            try:
                split(name)
            except ModelsConfigError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("providers")
    @classmethod
    def _providers(cls, value: dict[str, ProviderSettings]) -> dict[str, ProviderSettings]:
        unknown = sorted(set(value) - set(PROVIDERS))
        if unknown:
            raise ValueError(f"{', '.join(unknown)} is not a provider; use one of {', '.join(PROVIDERS)}")
        return value

    def model_for(self, role: str, asked: str | None = None) -> str:
        """The model a call by ``role`` uses: ``asked`` if given, else ``COUNCIL_MODEL``, else the role's, else the
        default; :class:`ModelsConfigError` saying how to choose one when none is set."""
        chosen = asked or os.environ.get("COUNCIL_MODEL") or self.roles.get(role) or self.default
        if not chosen:
            raise ModelsConfigError("no model is chosen: set COUNCIL_MODEL=provider:model (for example "
                                    "openai:gpt-4.1-mini), or [models] default in the team file")
        split(chosen)
        return chosen

    def price(self, model: str) -> Price:
        """What ``model`` costs (nothing, if its price is not configured: its calls are counted in tokens only)."""
        return self.prices.get(model, Price())

    def settings(self, provider: str) -> ProviderSettings:
        """Where ``provider`` is and its time limits (the defaults, and the SDK's own variables, if not set)."""
        return self.providers.get(provider, ProviderSettings())


def load_models(table: Any, where: str = "the team file") -> ModelsConfig:
    """The ``[models]`` table ``table`` (an empty one when absent), validated; errors name the field."""
    try:
        return ModelsConfig.model_validate(table or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "the table"
        raise ModelsConfigError(f"{where} [models] {field}: {first['msg']}"
                                + (f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else "")) from None
