"""The contract a wire protocol fulfils: what the server, the recorder, the checker, the
plugin and the CLI may ask of a dialect, and nothing more.

A dialect is data plus a few small functions, in its own folder under ``dialects/``, and
one line in the registry (``dialects/__init__.py``). Everything outside ``dialects/``
reaches a protocol only through these fields, never by its name.

Where it sits: below the registry and above ``model``, ``framing`` and the shared kit
(``_kit``); it never imports a dialect.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mockserver.dialects._kit.knobs import Knobs
from mockserver.dialects._kit.limits import Size
from mockserver.dialects._kit.rules import RuleTable
from mockserver.dialects._kit.summary import Summary
from mockserver.model import (
    Event,
    Framing,
    Identity,
    Request,
    Response,
    Script,
    Violation,
)


@dataclass(frozen=True, slots=True)
class Route:
    """A method and path pattern a dialect serves. ``{name}`` matches one path segment."""

    method: str
    pattern: str
    endpoint: str


@dataclass(frozen=True, slots=True)
class ApiKey:
    """How a client sends its own key to an upstream: the first of ``variables`` set in
    the environment, in ``header``, spelled by ``template``. What ``tapedeck drift`` sends
    a live upstream (a key from a cassette, never)."""

    variables: tuple[str, ...]
    header: str = "authorization"
    template: str = "Bearer {key}"

    def headers(self, environ: Mapping[str, str]) -> dict[str, str]:
        """The header carrying the key; none when no variable is set."""
        key = next((environ[name] for name in self.variables if environ.get(name)), None)
        return {} if key is None else {self.header: self.template.format(key=key)}


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where recording forwards a request: ``name`` is the NAME of ``--upstream NAME=URL``,
    ``url`` the real provider's base URL ("" when there is none to assume: the user must
    give one), ``prefix`` the request paths it takes ("" for any), ``key`` how a client
    authenticates with a key of its own (None: a keyless local server, or requests that
    are signed rather than keyed, which Tapedeck cannot do)."""

    name: str
    url: str = ""
    prefix: str = ""
    key: ApiKey | None = None


@dataclass(frozen=True)
class Recipe:
    """One bundled cassette: where it goes, what was asked, what the answer says."""

    file: str
    path: str
    body: dict[str, Any]
    script: Script
    origin: str = "https://api.openai.com"
    method: str = "POST"


@dataclass(frozen=True, slots=True)
class SecretPattern:
    """A credential or account id of a recognizable shape, as it appears in any text (a
    header value, a URL, a body, an error echoing it). ``kind`` names it in ``tapedeck
    lint``; the regex's ``secret`` group is the secret (the whole match when it has none),
    so context such as ``Signature=`` can anchor a shape without being removed.

    Every request body is searched for every shape when matching, so shapes must be
    cheap: a regex should start with a literal (Python's ``re`` then finds it at C speed;
    a leading lookbehind or a case-insensitive start tries every position). A shape that
    cannot gives ``hints``: lower-case strings one of which any match contains (a text
    holding none is not searched)."""

    kind: str
    regex: re.Pattern[str]
    hints: tuple[str, ...] = ()

    @classmethod
    def of(cls, kind: str, regex: str, *hints: str) -> SecretPattern:
        return cls(kind, re.compile(regex), tuple(hint.lower() for hint in hints))

    @classmethod
    def key(cls, kind: str, prefix: str, length: int, *, unless: str = "") -> SecretPattern:
        """A key that starts with the text ``prefix`` (not followed by ``unless``), then
        ``length`` or more key characters holding a digit; not inside a longer word
        ("task-..."), and not followed by a mask: "sk-ab****yz" is a provider's masked
        echo, not a key."""
        start = re.escape(prefix) + r"(?<![\w-]" + re.escape(prefix) + ")"
        start += f"(?!{re.escape(unless)})" if unless else ""
        run = r"(?=[A-Za-z0-9_-]*[0-9])[A-Za-z0-9_-]{" + str(length) + r",}(?![A-Za-z0-9_*-])"
        return cls.of(kind, start + run)


def bearer(api_key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {api_key}"}


@dataclass(frozen=True, slots=True)
class Conformance:
    """What ``tapedeck check`` needs of a protocol: to read a stream of it in
    protocol-neutral terms (``summarize``; ``summarize_body`` for a non-streamed answer),
    and, to act as its client in front of a proxy, ``request_body(prompt, model, tools,
    n, include_usage)``, the streamed request a client sends (None: no client
    scenarios). ``choices`` and ``usage_option`` say which scenarios apply."""

    summarize: Callable[[Sequence[Event]], Summary]
    request_body: Callable[[str, str, tuple[str, ...], int, bool | None], dict[str, Any]] | None = (
        None
    )
    summarize_body: Callable[[bytes], Summary] | None = None
    client_headers: Callable[[str], dict[str, str]] = bearer
    choices: bool = False
    usage_option: bool = False


class MidstreamError(Protocol):
    """A protocol's in-band error, as the frame(s) that carry it and end the stream the way
    the provider ends it after one. ``sequence_number``: the events sent before it (for
    protocols that number them); ``kind`` and ``message``: the error's type and text ("":
    the protocol's usual ones); ``request``: for a protocol whose framing depends on it."""

    def __call__(
        self,
        sequence_number: int,
        kind: str = "",
        message: str = "",
        request: Request | None = None,
    ) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Dialect:
    """One wire protocol: data plus a few small functions (see ARCHITECTURE.md)."""

    name: str
    routes: tuple[Route, ...]
    framing: Framing
    is_stream: Callable[[Request], bool]
    identity: Callable[[Request], Identity]
    check: Callable[[Request | None, Sequence[Event]], list[Violation]]
    error: Callable[[int, str, str], Response]
    synthesize: Callable[[Request, Script], Response]
    rules: RuleTable = field(default_factory=RuleTable)
    """Every rule ``check`` enforces: its id, what it requires, its message."""
    base_path: str = ""
    """What to append to the server URL to get this dialect's SDK base URL."""
    environment: tuple[tuple[str, str], ...] = ()
    """Environment variables pointing this dialect's SDK at a server; ``{url}`` is the
    server's root URL."""
    default_error_kind: str = "invalid_request_error"
    select_framing: Callable[[Request], Framing] | None = None
    """For a protocol whose stream framing depends on the request (Gemini: ``alt=sse``
    or a JSON array); None means ``framing`` always."""
    secret_headers: frozenset[str] = frozenset()
    """Request or response headers of this protocol that carry credentials or account ids,
    lower case: never written to a cassette (on top of the generic ones)."""
    secret_patterns: tuple[SecretPattern, ...] = ()
    """The shapes of this protocol's keys and account ids (``sk-...``, ``AKIA...``): removed
    wherever they appear when recording, flagged by ``tapedeck lint``, removed by
    ``tapedeck redact`` (on top of the generic shapes: bearer tokens, URL passwords...)."""
    upstreams: tuple[Upstream, ...] = ()
    """Where recording forwards this protocol's requests: the first whose prefix fits."""
    midstream_error: MidstreamError | None = None
    """The protocol's in-band error (``fault:error``, ``tapedeck check``); None when it has
    none."""
    recipes: tuple[Recipe, ...] = ()
    """The bundled cassettes of this protocol (``tapedeck synth --bundled``)."""
    knobs: Knobs | None = None
    """What the hypothesis strategies need; None: derived from the routes."""
    conformance: Conformance | None = None
    """What ``tapedeck check`` needs to speak this protocol to a proxy; None: it cannot."""
    limits: tuple[Size, ...] = ()
    """The request fields (and script sizes) that size a synthesized answer, each bounded
    by a named limit the server checks before synthesizing (``_kit/limits.py``)."""

    def framing_for(self, request: Request | None) -> Framing:
        if request is None or self.select_framing is None:
            return self.framing
        return self.select_framing(request)

    def upstream_for(self, request: Request) -> Upstream | None:
        return next((u for u in self.upstreams if request.path.startswith(u.prefix)), None)


Registry = Mapping[str, Dialect]
