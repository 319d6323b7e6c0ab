"""The providers an agent calls, made once each from the ``[models]`` configuration and the SDKs' own variables."""

from __future__ import annotations

import os
import threading

from actors.llm.config import ModelsConfig, ModelsConfigError, ProviderSettings
from actors.llm.errors import SERVICES
from actors.llm.types import Provider


def make_provider(name: str, settings: ProviderSettings) -> Provider:
    """The provider ``name`` with ``settings``: its ``base_url`` if given, else the SDK's own variable
    (``OPENAI_BASE_URL``, ``ANTHROPIC_BASE_URL``, ``OLLAMA_HOST``), else the service's address; the key from the
    SDK's variable. A missing key is an :class:`~actors.llm.errors.AuthenticationFailed` naming the variable."""
    timeout, stall_after = settings.timeout, settings.stall_after
    # Each SDK is imported only when its provider is first made (a second or more each).
    match name:
        case "openai":
            from actors.llm import openai_provider
            from actors.llm.openai_provider import OpenAIProvider

            return OpenAIProvider(api_key=_key(name),
                                  base_url=_place(name, settings) or openai_provider.DEFAULT_BASE_URL,
                                  timeout=timeout, stall_after=stall_after)
        case "anthropic":
            from actors.llm import anthropic_provider
            from actors.llm.anthropic_provider import AnthropicProvider

            return AnthropicProvider(api_key=_key(name),
                                     base_url=_place(name, settings) or anthropic_provider.DEFAULT_BASE_URL,
                                     timeout=timeout, stall_after=stall_after)
        case "ollama":
            from actors.llm import ollama_provider
            from actors.llm.ollama_provider import OllamaProvider

            return OllamaProvider(base_url=_place(name, settings) or ollama_provider.DEFAULT_BASE_URL,
                                  api_key=_key(name),
                                  timeout=timeout, stall_after=stall_after)
        case "local":
            from actors.llm.local_provider import LocalProvider

            return LocalProvider(timeout=timeout, stall_after=stall_after, threads=settings.threads,
                                 context=settings.context, placement=settings.placement())
        case _:
            raise ModelsConfigError(f"the {name!r} provider is not available in this council; use openai, "
                                    "anthropic, ollama or local")


def _key(provider: str) -> str | None:
    """The provider's key, from its SDK's own variable (None when unset)."""
    return os.environ.get(SERVICES[provider].key_variable) or None


def _place(provider: str, settings: ProviderSettings) -> str | None:
    """Where the provider is: the configuration's ``base_url``, else its SDK's variable (None: the service's own)."""
    return settings.base_url or os.environ.get(SERVICES[provider].url_variable) or None


class Providers:
    """One provider per name for an agent's whole life (their clients keep connections), made when first asked."""

    def __init__(self, config: ModelsConfig) -> None:
        self.config = config
        self._made: dict[str, Provider] = {}
        self._lock = threading.Lock()

    def __call__(self, name: str) -> Provider:
        """The provider ``name`` (see :func:`make_provider`)."""
        with self._lock:
            found = self._made.get(name)
            if found is None:
                found = self._made[name] = make_provider(name, self.config.settings(name))
            return found

    def close(self) -> None:
        """Close every provider made."""
        with self._lock:
            for provider in self._made.values():
                provider.close()
            self._made.clear()
