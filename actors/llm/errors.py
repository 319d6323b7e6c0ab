"""How a model call fails: one error per kind of failure, each saying in one line what to do, none quoting a key.

Every failure of a provider call is a :class:`ModelCallError`. Its ``kind`` is what a later layer records in
``llm.failed`` and decides on; ``transient`` says whether the same call may succeed if tried again (rate limits,
server errors, timeouts, stalls, lost connections) or never will (a bad key, a bad request, a refusal, a prompt
too long); ``retry_after`` is the wait the provider asked for, when it named one.

Classification goes by what the provider states (HTTP status, error code or type, the SDK's exception class),
never by matching the prose of a message — the one exception is documented where Anthropic leaves no other sign.

A message may quote the provider's own explanation, so every message is cleaned on construction (:func:`clean`):
the configured key is cut out, ``Bearer`` credentials are cut out, and :func:`actors.tools.redact.scrub` removes
anything else shaped like a secret. The SDK's exception is neither the cause nor the context of the error the
adapters raise (they raise it after the handler ends): its request object carries the ``Authorization`` header.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

from actors.tools.redact import REDACTED, scrub
from events.errors import CouncilError

Kind = Literal["rate_limited", "server_error", "timeout", "refused", "context_too_long", "authentication",
               "bad_request", "stalled", "connection"]

MAX_DETAIL_CHARS = 300
"""The longest provider explanation quoted in a message (they can carry whole request bodies)."""

CONTEXT_CODES = frozenset({"context_length_exceeded", "string_above_max_length", "request_too_large"})
"""Error codes (OpenAI ``code``, Anthropic ``type``) meaning the prompt does not fit the model."""

SPENT_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached", "contract_spend_limit_reached",
                         "enforced_spend_limit_reached"})
"""Codes a 429 carries when the account is out of money or quota: retrying cannot help, so these are refusals."""

RATE_CODES = frozenset({"rate_limit_exceeded", "rate_limit_error"})
"""Codes of a rate limit reported inside a stream, where there is no 429 status to go by."""


class ModelCallError(CouncilError):
    """A model call failed; ``kind`` says how, ``transient`` whether trying again may help.

    The message is one line that says what was wrong and what to do, cleaned of secrets (see the module).
    Errors pickle with their fields, so they cross Ray's process boundaries intact.
    """

    kind: ClassVar[Kind]
    transient: ClassVar[bool]

    def __init__(self, message: str, *, provider: str = "", status: int | None = None,
                 retry_after: float | None = None, secrets: Iterable[str] = ()) -> None:
        self.message = clean(message, secrets)
        self.provider = provider
        self.status = status
        self.retry_after = retry_after
        super().__init__(self.message)

    def __reduce__(self) -> tuple[object, tuple[type[ModelCallError], str, str, int | None, float | None]]:
        return (_rebuild, (type(self), self.message, self.provider, self.status, self.retry_after))


def _rebuild(cls: type[ModelCallError], message: str, provider: str, status: int | None,
             retry_after: float | None) -> ModelCallError:
    return cls(message, provider=provider, status=status, retry_after=retry_after)


class RateLimited(ModelCallError):
    """The provider is limiting the rate of calls (429); wait ``retry_after`` seconds when it is given."""

    kind = "rate_limited"
    transient = True


class ServerError(ModelCallError):
    """The provider failed on its side (5xx, overloaded, an error event mid-stream)."""

    kind = "server_error"
    transient = True


class TimedOut(ModelCallError):
    """The call did not finish within its overall timeout."""

    kind = "timeout"
    transient = True


class Stalled(ModelCallError):
    """A streamed reply went silent for longer than ``stall_after`` and was cut."""

    kind = "stalled"
    transient = True


class Unreachable(ModelCallError):
    """The provider could not be reached, or the connection broke mid-reply."""

    kind = "connection"
    transient = True


class Refused(ModelCallError):
    """The provider refused the call: no permission, no credit, no quota left. Retrying will not help."""

    kind = "refused"
    transient = False


class ContextTooLong(ModelCallError):
    """The prompt does not fit the model's context window or the provider's size limit."""

    kind = "context_too_long"
    transient = False


class AuthenticationFailed(ModelCallError):
    """There is no key, or the provider refused the key (401)."""

    kind = "authentication"
    transient = False


class BadRequest(ModelCallError):
    """The request is wrong (unknown model, invalid parameter): sent again unchanged it fails again."""

    kind = "bad_request"
    transient = False


@dataclass(frozen=True)
class Service:
    """What an error message says about one provider: its name, the variables that configure it, how to list models."""

    name: str
    """The provider's name in configuration: ``openai``, ``anthropic``, ``ollama``."""
    title: str
    """How a sentence names it: ``the OpenAI API``."""
    key_variable: str
    """The environment variable its key is read from."""
    url_variable: str
    """The environment variable its address is read from."""
    list_models: str
    """How to see which models exist, as a clause; ``{base_url}`` in it stands for the provider's address."""


SERVICES: dict[str, Service] = {
    "openai": Service(name="openai", title="the OpenAI API", key_variable="OPENAI_API_KEY",
                      url_variable="OPENAI_BASE_URL",
                      list_models="GET {base_url}/models lists the models the key may use"),
    "anthropic": Service(name="anthropic", title="the Anthropic API", key_variable="ANTHROPIC_API_KEY",
                         url_variable="ANTHROPIC_BASE_URL", list_models="GET {base_url}/v1/models lists them"),
    "ollama": Service(name="ollama", title="the Ollama server", key_variable="OLLAMA_API_KEY",
                      url_variable="OLLAMA_HOST",
                      list_models="`ollama list` shows the models pulled there, `ollama pull MODEL` fetches one"),
}
"""The services the SDK adapters speak to: where each reads its key and its address from, and how it is named."""


# -- cleaning ----------------------------------------------------------------------------------------------------

_BEARER = re.compile(r"(?i)\bbearer\s+\S+")
_SPACE = re.compile(r"\s+")


def clean(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` as one line, at most a few hundred characters, with no secret in it.

    Each of ``secrets`` (the configured keys) is cut out wherever it occurs, then ``Bearer`` credentials, then
    whatever :func:`~actors.tools.redact.scrub` finds shaped like a secret. Cutting comes before shortening, so
    a key cannot survive by being split at the cut.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    text = scrub(_BEARER.sub(f"Bearer {REDACTED}", text))
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= 2 * MAX_DETAIL_CHARS else text[: 2 * MAX_DETAIL_CHARS - 1] + "…"


def _detail(text: str | None) -> str:
    """A provider's explanation, shortened for quoting (it is cleaned with the whole message)."""
    text = _SPACE.sub(" ", text or "").strip().rstrip(".") or "no explanation given"
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 1] + "…"


# -- reading what the provider said ------------------------------------------------------------------------------


def retry_after_seconds(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """The wait a response asks for, in seconds: ``retry-after-ms``, else ``retry-after`` (seconds or a date).

    None when neither header is there or readable. A date in the past is a wait of 0.
    """
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        seconds: float | None
        try:
            seconds = float(value) * scale
        except ValueError:
            seconds = _seconds_until(value, now)
        if seconds is not None and math.isfinite(seconds):
            return max(0.0, seconds)
    return None


def _seconds_until(http_date: str, now: float | None) -> float | None:
    try:
        moment = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        return None
    return moment.timestamp() - (time.time() if now is None else now)


# -- building the error for a failure ----------------------------------------------------------------------------


def status_error(service: Service, status: int | None, *, detail: str | None, code: str | None, model: str,
                 retry_after: float | None = None, secrets: Iterable[str] = (), base_url: str = "<base_url>",
                 ) -> ModelCallError:
    """The error for a provider's error reply: by HTTP ``status`` and the provider's ``code``, never its prose.

    ``status`` is None for an error the provider sent inside a stream that had begun well (HTTP 200).
    """
    keys = tuple(secrets)

    def made(cls: type[ModelCallError], message: str, wait: float | None = None) -> ModelCallError:
        return cls(message, provider=service.name, status=status, retry_after=wait, secrets=keys)

    said, title = _detail(detail), service.title
    where = f"{status or 'mid-stream'}" + (f" {code}" if code else "")
    if code in CONTEXT_CODES or status == 413:
        return made(ContextTooLong, f"the messages are too long for {model!r} at {title} ({where}: {said}); "
                                    "shorten them or use a model with a larger context window")
    if code in SPENT_CODES:
        return made(Refused, f"{title} refused the call: the account's quota or spend limit is used up ({where}); "
                             "raise the limit or add credit — retrying will not help")
    if status is None:
        if code in RATE_CODES:
            return made(RateLimited, f"{title} is rate-limiting calls ({where}): {said}; retry after a wait")
        return made(ServerError, f"{title} reported an error in the middle of the reply from {model!r} ({where}: "
                                 f"{said}); retry the call")
    if status == 401:  # the provider's words are left out: they quote the key's ends or "Bearer YOUR_KEY"
        return made(AuthenticationFailed, f"{title} refused the key ({where}); set {service.key_variable} to a "
                                          "valid key")
    if status == 429:
        wait = f", asks for a wait of {retry_after:g} s" if retry_after is not None else ""
        return made(RateLimited, f"{title} is rate-limiting calls ({where}{wait}): {said}; retry after the wait, "
                                 "or make fewer calls at once", retry_after)
    if status == 402:
        return made(Refused, f"{title} refused the call for lack of credit ({where}): {said}; add credit to the "
                             "account or choose another provider")
    if status == 403:
        return made(Refused, f"{title} refused the call to {model!r} ({where}): {said}; check that the key in "
                             f"{service.key_variable} may use this model")
    if status == 404:
        listing = service.list_models.format(base_url=base_url)
        return made(BadRequest, f"{title} has no model {model!r} ({where}: {said}); check the model name "
                                f"({listing}) and that {service.url_variable} points at the API")
    if status == 408:
        return made(TimedOut, f"{title} gave up waiting for the request ({where}); retry the call")
    if status == 409 or status >= 500:
        return made(ServerError, f"{title} failed on its side ({where}): {said}; retry the call later", retry_after)
    return made(BadRequest, f"{title} rejected the request to {model!r} ({where}: {said}); fix the request — "
                            "sent again unchanged it will fail again")


def missing_key(service: Service) -> AuthenticationFailed:
    """No key was configured: raised before anything is sent."""
    return AuthenticationFailed(f"no key for {service.title}; set {service.key_variable} (or pass api_key=)",
                                provider=service.name)


def stalled(service: Service, model: str, stall_after: float) -> Stalled:
    """A stream from ``model`` sent nothing for ``stall_after`` seconds."""
    return Stalled(f"{title_of(service)} sent nothing for {stall_after:g} s while streaming the reply from "
                   f"{model!r}, so the call was cut; retry it, or allow a longer stall_after for a slow model",
                   provider=service.name)


def timed_out(service: Service, model: str, timeout: float) -> TimedOut:
    """The call to ``model`` did not finish within ``timeout`` seconds."""
    return TimedOut(f"{title_of(service)} did not finish the reply from {model!r} within {timeout:g} s; retry it, "
                    "or allow a longer timeout for long answers", provider=service.name)


def unreachable(service: Service, base_url: str, detail: str, secrets: Iterable[str] = ()) -> Unreachable:
    """The connection to ``base_url`` failed or broke; ``detail`` names the transport's error."""
    return Unreachable(f"could not talk to {service.title} at {base_url} ({_detail(detail)}); check that it is "
                       f"running and reachable, and that {service.url_variable} is right", provider=service.name,
                       secrets=secrets)


def title_of(service: Service) -> str:
    """The service's title, capitalised to begin a sentence."""
    return service.title[:1].upper() + service.title[1:]
