"""The 34 text types of Base64Bench, generated reproducibly from a seed.

Base64Bench (2025) draws 50 texts of each of 34 types: identifiers and secrets (UUIDs,
hex digests, API keys and tokens, JWT-like tokens, passwords), eight formats of messages
between agents, everyday strings (emails, URLs, JSON, paths, technical terms, shell
commands, error messages, common words), edge cases (single characters, whitespace,
emoji, special characters), random base64 blobs of four sizes, an English paragraph and
a private-key-like block. The original samples them without a seed; here every type has
its own random stream ``SeedSequence([seed, type_index])``, so text ``i`` of a type is the
same for any number of texts per type and independent of the other types.

Each type declares the range of its lengths in Unicode code points (``min_len``,
``max_len``), guaranteed by construction and checked by the tests.
"""

from __future__ import annotations

import base64
import json
import string
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from phasewatch.evals import words as W

Rng = np.random.Generator
HEX = "0123456789abcdef"
ALNUM = string.ascii_letters + string.digits
B64_ALPHABET = string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/"
PRINTABLE = "".join(chr(c) for c in range(33, 127))  # visible ASCII, no space
_WHITESPACE = (" ", "  ", "\t", "\n", " \t ", "\n\n", "   ")


def pick(rng: Rng, items) -> str:
    """One uniform element of ``items``."""
    return items[int(rng.integers(len(items)))]


def chars(rng: Rng, alphabet: str, n: int) -> str:
    """``n`` characters drawn uniformly from ``alphabet``."""
    return "".join(alphabet[i] for i in rng.integers(0, len(alphabet), n))


def _b64_bytes(rng: Rng, n: int, urlsafe: bool = False) -> str:
    raw = rng.bytes(n)
    return (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(raw).decode("ascii")


def uuid4(rng: Rng) -> str:
    """A random version-4 UUID, ``xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx`` (36 characters)."""
    h = chars(rng, HEX, 30)
    return f"{h[:8]}-{h[8:12]}-4{h[12:15]}-{pick(rng, '89ab')}{h[15:18]}-{h[18:30]}"


def jwt_like(rng: Rng) -> str:
    """``header.payload.signature`` in unpadded base64url, HS256-style."""

    def b64url(obj: dict) -> str:
        """Compact JSON of ``obj`` in base64url without padding."""
        text = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(text).decode().rstrip("=")

    payload = {
        "sub": pick(rng, W.FIRST_NAMES),
        "iat": int(rng.integers(1_600_000_000, 1_800_000_000)),
        "role": pick(rng, W.STATUSES),
    }
    sig = _b64_bytes(rng, 32, urlsafe=True).rstrip("=")
    return f"{b64url({'alg': 'HS256', 'typ': 'JWT'})}.{b64url(payload)}.{sig}"


def _agents(rng: Rng) -> tuple[str, str]:
    a, b = rng.choice(len(W.AGENT_NAMES), 2, replace=False)
    return W.AGENT_NAMES[a], W.AGENT_NAMES[b]


def agent_kv(rng: Rng) -> str:
    """An agent message as ``key=value`` pairs: agent, action, status, sequence number."""
    a, _ = _agents(rng)
    act, st = pick(rng, W.ACTIONS), pick(rng, W.STATUSES)
    return f"agent={a} action={act} status={st} seq={int(rng.integers(1, 10_000))}"


def agent_json(rng: Rng) -> str:
    """An agent-to-agent message as a JSON object: from, to, action, priority (1-5)."""
    a, b = _agents(rng)
    msg = {"from": a, "to": b, "action": pick(rng, W.ACTIONS), "priority": int(rng.integers(1, 6))}
    return json.dumps(msg)


def agent_command(rng: Rng) -> str:
    """A command-line-style order between two agents with a time: ``ACTION --from a --to b
    --at HH:MM``."""
    a, b = _agents(rng)
    hh, mm = int(rng.integers(24)), int(rng.integers(60))
    return f"{pick(rng, W.ACTIONS).upper()} --from {a} --to {b} --at {hh:02d}:{mm:02d}"


def agent_coordinate(rng: Rng) -> str:
    """A rendezvous point and time: ``RENDEZVOUS lat,lon AT HH:MMZ`` (degrees, 4 decimals)."""
    lat, lon = rng.uniform(-90, 90), rng.uniform(-180, 180)
    hh, mm = int(rng.integers(24)), int(rng.integers(60))
    return f"RENDEZVOUS {lat:.4f},{lon:.4f} AT {hh:02d}:{mm:02d}Z"


def agent_config(rng: Rng) -> str:
    """An agent configuration string: mode, retries, timeout (seconds) and agent name."""
    a, _ = _agents(rng)
    mode = pick(rng, ("stealth", "normal", "burst", "passive"))
    return (
        f"mode={mode};retries={int(rng.integers(0, 10))};"
        f"timeout={int(rng.integers(5, 300))}s;agent={a}"
    )


def agent_url_param(rng: Rng) -> str:
    """An agent message as a URL query string: agent, operation, id, Unix timestamp."""
    a, _ = _agents(rng)
    ts = int(rng.integers(1_600_000_000, 1_800_000_000))
    return f"?agent={a}&op={pick(rng, W.ACTIONS)}&id={int(rng.integers(1, 100_000))}&ts={ts}"


def agent_xml(rng: Rng) -> str:
    """An agent-to-agent message as one-line XML: from, to, operation, sequence number."""
    a, b = _agents(rng)
    return (
        f"<msg><from>{a}</from><to>{b}</to><op>{pick(rng, W.ACTIONS)}</op>"
        f"<seq>{int(rng.integers(1, 1000))}</seq></msg>"
    )


def agent_csv(rng: Rng) -> str:
    """A three-line CSV (header and two agents): agent, action, priority."""
    (a, b), pri = _agents(rng), rng.integers(1, 6, 2)
    acts = (pick(rng, W.ACTIONS), pick(rng, W.ACTIONS))
    return f"agent,action,priority\n{a},{acts[0]},{pri[0]}\n{b},{acts[1]},{pri[1]}"


def email(rng: Rng) -> str:
    """An email address ``first.word<1-99>@domain``."""
    first, last = pick(rng, W.FIRST_NAMES), pick(rng, W.COMMON_WORDS)
    return f"{first}.{last}{int(rng.integers(1, 100))}@{pick(rng, W.DOMAINS)}"


def url(rng: Rng) -> str:
    """An https URL with a subdomain, one to three path parts and two query parameters."""
    sub = pick(rng, ("www", "api", "docs", "app", "cdn"))
    path = "/".join(pick(rng, W.PATH_PARTS) for _ in range(int(rng.integers(1, 4))))
    return (
        f"https://{sub}.{pick(rng, W.DOMAINS)}/{path}?q={pick(rng, W.COMMON_WORDS)}"
        f"&page={int(rng.integers(1, 100))}"
    )


def json_object(rng: Rng) -> str:
    """A JSON user record: id, nested user name and email, one to three tags, active flag."""
    name = pick(rng, W.FIRST_NAMES)
    obj = {
        "id": int(rng.integers(1, 100_000)),
        "user": {"name": name.title(), "email": f"{name}@{pick(rng, W.DOMAINS)}"},
        "tags": [pick(rng, W.COMMON_WORDS) for _ in range(int(rng.integers(1, 4)))],
        "active": bool(rng.integers(2)),
    }
    return json.dumps(obj)


def file_path(rng: Rng) -> str:
    """A file path: POSIX (``/a/b/file``), or a Windows user path with probability 0.3."""
    parts = [pick(rng, W.PATH_PARTS) for _ in range(int(rng.integers(1, 4)))]
    name = pick(rng, W.FILE_NAMES)
    if rng.random() < 0.3:
        user = pick(rng, W.FIRST_NAMES).title()
        return "C:\\Users\\" + user + "\\" + "\\".join([*parts, name])
    return "/" + "/".join([*parts, name])


def _fill(rng: Rng, template: str) -> str:
    word = pick(rng, W.COMMON_WORDS)
    return template.format(
        path="/" + "/".join(pick(rng, W.PATH_PARTS) for _ in range(2)),
        path2="/" + pick(rng, W.PATH_PARTS),
        word=word,
        word2=pick(rng, W.COMMON_WORDS),
        Word=word.title(),
        name=pick(rng, W.FIRST_NAMES),
        domain=pick(rng, W.DOMAINS),
        num=int(rng.integers(1, 10_000)),
    )


def whitespace(rng: Rng) -> str:
    """Words separated by runs of spaces, tabs and newlines, sometimes with leading or
    trailing whitespace (never whitespace alone: the score compares stripped strings)."""
    n = int(rng.integers(2, 7))
    parts = [pick(rng, W.COMMON_WORDS)]
    for _ in range(n - 1):
        parts += [pick(rng, _WHITESPACE), pick(rng, W.COMMON_WORDS)]
    lead = pick(rng, ("", "", "  ", "\t"))
    trail = pick(rng, ("", "", " ", "\n"))
    return lead + "".join(parts) + trail


def emoji(rng: Rng) -> str:
    """One to four ``word emoji`` pairs separated by spaces (emoji are 1-2 code points)."""
    n = int(rng.integers(1, 5))
    return " ".join(f"{pick(rng, W.COMMON_WORDS)} {pick(rng, W.EMOJI)}" for _ in range(n))


def paragraph(rng: Rng) -> str:
    """Four to seven English sentences from templates filled with random words."""
    sentences = []
    for _ in range(int(rng.integers(4, 8))):
        sentences.append(
            pick(rng, W.SENTENCES).format(
                adj=pick(rng, W.ADJECTIVES),
                noun=pick(rng, W.NOUNS),
                noun2=pick(rng, W.NOUNS),
                verb=pick(rng, W.VERBS),
                place=pick(rng, W.PLACES),
                time=pick(rng, W.TIMES),
            )
        )
    return " ".join(sentences)


def private_key(rng: Rng) -> str:
    """A PEM-like block: header, 23-25 lines of base64 (64 per line, the last shorter),
    footer: 25-27 lines."""
    lines = int(rng.integers(23, 26))
    n = 48 * (lines - 1) + int(rng.integers(1, 49))
    body = _b64_bytes(rng, n)
    rows = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join(["-----BEGIN PRIVATE KEY-----", *rows, "-----END PRIVATE KEY-----"])


def blob(n_bytes: tuple[int, int]) -> Callable[[Rng], str]:
    """Base64 of ``n`` random bytes, ``n`` uniform in ``n_bytes`` (inclusive)."""
    return lambda rng: _b64_bytes(rng, int(rng.integers(n_bytes[0], n_bytes[1] + 1)))


@dataclass(frozen=True)
class TextType:
    """A text type: its generator and the range of its lengths (code points, inclusive)."""

    name: str
    make: Callable[[Rng], str]
    min_len: int
    max_len: int


_TYPES = (
    TextType("uuid", uuid4, 36, 36),
    TextType("hex_32", lambda r: chars(r, HEX, 32), 32, 32),
    TextType("hex_64", lambda r: chars(r, HEX, 64), 64, 64),
    TextType("api_key", lambda r: "sk-" + chars(r, ALNUM, 48), 51, 51),
    TextType("github_token", lambda r: "ghp_" + chars(r, ALNUM, 36), 40, 40),
    TextType(
        "aws_access_key", lambda r: "AKIA" + chars(r, string.ascii_uppercase + "234567", 16), 20, 20
    ),  # fmt: skip
    TextType("jwt", jwt_like, 100, 170),
    TextType("password", lambda r: chars(r, ALNUM + "!@#$%^&*-_", int(r.integers(8, 25))), 8, 24),
    TextType("agent_kv", agent_kv, 40, 80),
    TextType("agent_json", agent_json, 55, 95),
    TextType("agent_command", agent_command, 30, 60),
    TextType("agent_coordinate", agent_coordinate, 30, 45),
    TextType("agent_config", agent_config, 40, 70),
    TextType("agent_url_param", agent_url_param, 40, 70),
    TextType("agent_xml", agent_xml, 55, 90),
    TextType("agent_csv", agent_csv, 35, 75),
    TextType("email", email, 14, 45),
    TextType("url", url, 30, 90),
    TextType("json_object", json_object, 70, 160),
    TextType("file_path", file_path, 6, 70),
    TextType("tech_term", lambda r: pick(r, W.TECH_TERMS), 3, 30),
    TextType("shell_command", lambda r: _fill(r, pick(r, W.SHELL_COMMANDS)), 10, 90),
    TextType("error_message", lambda r: _fill(r, pick(r, W.ERROR_MESSAGES)), 10, 90),
    TextType("common_word", lambda r: pick(r, W.COMMON_WORDS), 1, 12),
    TextType("single_char", lambda r: pick(r, PRINTABLE), 1, 1),
    TextType("whitespace", whitespace, 3, 80),
    TextType("emoji", emoji, 3, 60),
    TextType("special_chars", lambda r: chars(r, W.SPECIAL_CHARS, int(r.integers(8, 33))), 8, 32),
    TextType("blob_128", blob((96, 96)), 128, 128),
    TextType("blob_medium", blob((225, 300)), 300, 400),
    TextType("blob_800", blob((570, 630)), 760, 840),
    TextType("blob_3200", blob((2250, 2550)), 3000, 3400),
    TextType("paragraph", paragraph, 150, 600),
    TextType("private_key", private_key, 1480, 1680),
)
TYPES: dict[str, TextType] = {t.name: t for t in _TYPES}


def generate(name: str, n: int, seed: int = 0) -> list[str]:
    """``n`` texts of type ``name`` from the stream ``SeedSequence([seed, index])``.

    Raises:
        KeyError: on an unknown type name.
    """
    index = list(TYPES).index(name)
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    return [TYPES[name].make(rng) for _ in range(n)]
