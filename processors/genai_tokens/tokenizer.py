"""Offline token counting: OpenAI's BPE encodings plus OpenAI's chat accounting.

The BPE is `bpe-openai` (Python bindings of the Rust `bpe-openai` crate from GitHub's
rust-gems). Its o200k_base / cl100k_base tables are compiled into the extension, so
nothing is read from the network, or even from a data file, at run time. Its counts
are identical to `tiktoken` (checked against tiktoken itself on fuzzed text, see the
README), and it is linear on long unbroken runs (base64 images, minified code), where
pure-Python BPEs go quadratic. The low-level `_bindings` tokenizer is used directly:
`count()` allocates no token list and has none of the wrapper's size limits; its API is
declared in the package's own `_bindings.pyi`.

Chat accounting follows the OpenAI cookbook, "How to count tokens with tiktoken", §6
(`num_tokens_from_messages`, verified there against the API for gpt-3.5-turbo, gpt-4,
gpt-4o and gpt-4o-mini): every message costs `TOKENS_PER_MESSAGE` (3) plus the tokens
of its role and content, and the reply is primed with `<|start|>assistant<|message|>`
(`REPLY_PRIMING`, 3). Tool calls an assistant message carries are not covered by the
cookbook: they are counted here as name + arguments + `TOKENS_PER_TOOL_CALL`, an
approximation. Output (completion) tokens are the content and tool-call tokens only.
"""

from __future__ import annotations

import json
import re
import threading
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tracehouse.core.genai import ChatMessage

O200K = "o200k_base"
CL100K = "cl100k_base"
ENCODINGS = (O200K, CL100K)

TOKENS_PER_MESSAGE = 3  # <|start|>{role}<|message|>{content}<|end|>: start, message, end
REPLY_PRIMING = 3  # every reply is primed with <|start|>assistant<|message|>
TOKENS_PER_TOOL_CALL = 3  # approximation: framing of one function call (not documented by OpenAI)


class _Counter(Protocol):
    def count(self, text: str) -> int: ...


_lock = threading.Lock()
_tokenizers: dict[str, _Counter] = {}


def _tokenizer(encoding: str) -> _Counter:
    tok = _tokenizers.get(encoding)
    if tok is None:
        if encoding not in ENCODINGS:
            raise ValueError(f"unknown encoding {encoding!r}; expected one of {', '.join(ENCODINGS)}")
        with _lock:
            tok = _tokenizers.get(encoding)
            if tok is None:
                # The first import takes ~0.5-0.9 s and ~125 MB (a 74 MB extension and the
                # package's own rank tables): loaded on the first text to count, which the
                # processor sends to a worker thread until then (`loaded`).
                with warnings.catch_warnings():
                    # bpe_openai's __init__ uses importlib.resources.open_binary.
                    warnings.simplefilter("ignore", DeprecationWarning)
                    from bpe_openai import _bindings

                tok = _bindings.tokenizer_for_encoding(encoding)
                _tokenizers[encoding] = tok
    return tok


def loaded() -> bool:
    """Whether any encoding is loaded (counting then never pays the first import)."""
    return bool(_tokenizers)


# Longer texts are counted in pieces of about this many characters. bpe-openai holds the
# GIL for a whole call (~40 ms per 200k characters of base64): a piece is ~3 ms, and
# between pieces a worker thread counting a huge message lets the event loop run.
PIECE_CHARS = 16_384


def count_text(text: str, encoding: str = O200K) -> int:
    """BPE tokens of `text`, special-token strings counted as ordinary text."""
    if not text:
        return 0
    tok = _tokenizer(encoding)
    if len(text) <= PIECE_CHARS:
        return _count(tok, text)
    return sum(_count(tok, piece) for piece in split_text(text))


def _count(tok: _Counter, text: str) -> int:
    try:
        return tok.count(text)
    except UnicodeEncodeError:
        # Lone surrogates (e.g. from "\ud83d" JSON escapes): as tiktoken, pair what
        # pairs and replace the rest with U+FFFD.
        return tok.count(text.encode("utf-16", "surrogatepass").decode("utf-16", "replace"))


def split_text(text: str, size: int = PIECE_CHARS) -> Iterable[str]:
    r"""`text` in pieces of at most about `size` characters whose token counts add up to the
    whole's.

    A piece ends before a space followed by non-whitespace. In both encodings'
    pre-tokenizer patterns (OpenAI's o200k_base and cl100k_base regexes) a pre-token
    contains a space only at its start or consists of whitespace only, and a whitespace
    run (`\s+(?!\S)`, `\s*[\r\n]+`) never takes the last space before non-whitespace, so
    such a space always starts a pre-token; BPE merges never cross pre-tokens, so the
    counts of the pieces sum to the count of the text. A stretch with no such space (base64, minified
    code) is cut at `size`: the two pre-tokens at the cut may count a token more or less."""
    start, n = 0, len(text)
    while n - start > size:
        end = start + size
        floor = start + size // 2
        cut = text.rfind(" ", floor, end)
        while cut > floor and text[cut + 1].isspace():
            cut = text.rfind(" ", floor, cut)
        if cut <= floor:
            cut = end
        yield text[start:cut]
        start = cut
    yield text[start:]


# --- model -> encoding ------------------------------------------------------------

# After tiktoken's MODEL_TO_ENCODING / MODEL_PREFIX_TO_ENCODING (tiktoken 0.14).
_END = r"(?=$|[-_.:@\s])"  # a family name ends the key or is followed by a separator
_O200K_MODELS = re.compile(
    r"^(?:ft:)?(?:gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|gpt-oss|o1|o3|o4-mini|o4|codex-mini)" + _END
)
# "gpt-4" must not take "gpt-4o" / "gpt-4.1" (matched above), so no "." after it here.
_CL100K_MODELS = re.compile(
    r"^(?:ft:)?(?:gpt-4|gpt-3\.5|gpt-35|text-embedding-3|text-embedding-ada-002|davinci-002|babbage-002)"
    r"(?=$|[-_:@\s])"
)
# Older completion models (p50k/r50k) are not bundled; cl100k_base is the nearest.
_LEGACY_MODELS = re.compile(r"^(?:text-(?:davinci|curie|babbage|ada)|code-(?:davinci|cushman)|davinci|curie|babbage|ada)"
                            + _END)


def _model_key(model: str) -> str:
    # "openai/gpt-4o", "azure/gpt-4", "openrouter/openai/gpt-4o-mini", "models/gemini-2.0-flash"
    key = model.strip().lower()
    if key.startswith("ft:"):
        return key
    return key.rsplit("/", 1)[-1]


def encoding_for(provider: str, model: str, default: str = O200K) -> str:
    """The encoding to count a model's tokens with.

    OpenAI models get their own encoding (o200k_base for the gpt-4o, gpt-4.1, gpt-4.5,
    gpt-5, o1/o3/o4 and gpt-oss families; cl100k_base for gpt-4, gpt-4-turbo,
    gpt-3.5-turbo, text-embedding-3 and ada-002). Every other model (Anthropic,
    Gemini, Llama, Mistral, unknown) is approximated with `default` (o200k_base): see
    the README for the measured error. An empty model gets `default` too. `provider`
    is not needed today (model names tell the families apart, whoever serves them:
    Azure, OpenRouter, LiteLLM prefixes are stripped) and is kept for future rules.
    """
    del provider
    key = _model_key(model)
    if not key:
        return default
    if _O200K_MODELS.match(key):
        return O200K
    if _CL100K_MODELS.match(key) or _LEGACY_MODELS.match(key):
        return CL100K
    return default


# --- messages -----------------------------------------------------------------------


@dataclass(slots=True)
class TokenEstimate:
    tokens: int
    scaled: bool = False  # content over the char budget was extrapolated, not counted
    chars: int = 0  # characters of text (content, tool names and arguments) seen


def _tool_call_texts(call: Any) -> tuple[str, str]:
    """(name, arguments) of a tool call in the OpenAI, flat, or OTel-parts shape."""
    if not isinstance(call, dict):
        return "", str(call) if call is not None else ""
    fn = call.get("function")
    if not isinstance(fn, dict):
        fn = call.get("tool_call", {}).get("function") if isinstance(call.get("tool_call"), dict) else None
    if not isinstance(fn, dict):
        fn = call
    name = fn.get("name")
    args = fn.get("arguments", fn.get("input", fn.get("args")))
    if args is None:
        args_text = ""
    elif isinstance(args, str):
        args_text = args
    else:
        # Structured arguments: the model emitted them as compact JSON.
        args_text = json.dumps(args, ensure_ascii=False, separators=(",", ":"), default=str)
    return (name if isinstance(name, str) else ""), args_text


def has_content(messages: Sequence[ChatMessage] | None) -> bool:
    """True if any message carries text content or a tool call."""
    if not messages:
        return False
    return any(m.content or m.tool_calls for m in messages)


class _Budget:
    """Counts text until `max_chars` characters were tokenized, then only measures."""

    __slots__ = ("encoding", "left", "counted_chars", "counted_tokens", "total_chars")

    def __init__(self, encoding: str, max_chars: int):
        self.encoding = encoding
        self.left = max_chars if max_chars > 0 else -1  # -1: unbounded
        self.counted_chars = 0
        self.counted_tokens = 0
        self.total_chars = 0

    def add(self, text: str) -> None:
        n = len(text)
        if not n:
            return
        self.total_chars += n
        if self.left < 0:
            take = text
        elif self.left == 0:
            return
        else:
            take = text if n <= self.left else text[: self.left]
            self.left -= len(take)
        self.counted_chars += len(take)
        self.counted_tokens += count_text(take, self.encoding)

    def tokens(self) -> tuple[int, bool]:
        if self.total_chars == self.counted_chars or not self.counted_chars:
            return self.counted_tokens, False
        # Linear extrapolation from the counted prefix (tokens per char of this span).
        return round(self.counted_tokens * self.total_chars / self.counted_chars), True


def estimate_messages(
    messages: Iterable[ChatMessage], encoding: str = O200K, *, prompt: bool = True, max_chars: int = 0
) -> TokenEstimate:
    """Tokens of a chat, per OpenAI's accounting (see the module doc).

    `prompt=True` counts an input: per-message overhead, role, content, tool calls and
    the reply priming. `prompt=False` counts an output: content and tool calls only.
    `max_chars > 0` tokenizes at most that many characters of text; the rest is
    extrapolated linearly from the tokens per character of what was counted.
    """
    budget = _Budget(encoding, max_chars)
    overhead = 0
    for message in messages:
        if prompt:
            overhead += TOKENS_PER_MESSAGE + count_text(message.role, encoding)
        budget.add(message.content)
        for call in message.tool_calls:
            name, args = _tool_call_texts(call)
            overhead += TOKENS_PER_TOOL_CALL
            budget.add(name)
            budget.add(args)
    if prompt:
        overhead += REPLY_PRIMING
    tokens, scaled = budget.tokens()
    return TokenEstimate(tokens=tokens + overhead, scaled=scaled, chars=budget.total_chars)


def count_messages(messages: Iterable[ChatMessage], encoding: str = O200K, *, prompt: bool = True,
                   max_chars: int = 0) -> int:
    """`estimate_messages(...).tokens`."""
    return estimate_messages(messages, encoding, prompt=prompt, max_chars=max_chars).tokens
