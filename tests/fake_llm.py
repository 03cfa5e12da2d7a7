"""A deterministic OpenAI-compatible model server for tests that drive real client libraries.

The real `openai`, `litellm`, `dspy`, `instructor` and `mlflow` clients talk HTTP to it as
they would to api.openai.com; every chat completion reports the same usage
(42 prompt / 17 completion / 59 total tokens, 8 of the prompt cached) — the numbers the
MLflow wire recordings in `../shared/fixtures/mlflow-wire/` were made with — so a test can
say exactly what tracehouse must store.

Anthropic's Messages API (`/v1/messages`) is served too, with the same usage.
Answers are shaped for whoever asks:
- DSPy's chat adapter (`[[ ## field ## ]]` markers): every output field it asked for;
- a request with `tools` and a forced `tool_choice` (Instructor's default mode): a call of
  that tool with arguments from `tool_arguments` (a valid object for the schema);
- anything else: `answer`.
It runs on a thread with the stdlib HTTP server, so synchronous clients work too.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PROMPT_TOKENS = 42
COMPLETION_TOKENS = 17
TOTAL_TOKENS = 59
CACHED_TOKENS = 8
RESPONSE_MODEL_SUFFIX = "-2024-07-18"  # the response names a dated snapshot, as OpenAI's does

_DSPY_FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]")


@dataclass
class FakeLLM:
    answer: str = "A deterministic answer."
    tool_arguments: dict[str, Any] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    reasoning_tokens: int = 0  # reported in completion_tokens_details (part of the 17)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """ANTHROPIC_BASE_URL (the Anthropic client adds /v1/messages)."""
        return f"http://127.0.0.1:{self.port}"

    def completion(self, request: dict[str, Any]) -> dict[str, Any]:
        model = str(request.get("model", "gpt-4o-mini"))
        message: dict[str, Any] = {"role": "assistant", "content": self._content(request)}
        finish = "stop"
        tool = _forced_tool(request)
        if tool:
            message = {"role": "assistant", "content": None, "tool_calls": [{
                "id": "call_0", "type": "function",
                "function": {"name": tool, "arguments": json.dumps(self.tool_arguments)}}]}
            finish = "tool_calls"
        return {
            "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": 1_796_000_000,
            "model": model + RESPONSE_MODEL_SUFFIX if model.startswith("gpt-4o") else model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
                      "total_tokens": TOTAL_TOKENS, "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS},
                      "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens}},
            "system_fingerprint": "fp_tracehouse",
        }

    def _content(self, request: dict[str, Any]) -> str:
        prompt = "\n".join(str(m.get("content") or "") for m in request.get("messages", [])
                           if m.get("role") == "system")
        if "[[ ## completed ## ]]" not in prompt:
            return self.answer
        # DSPy: answer each output field the system prompt lists after "Your output fields are".
        outputs = prompt.split("Your output fields are", 1)[-1].split("All interactions will be structured", 1)[0]
        names = [n for n in re.findall(r"`(\w+)`", outputs) if n != "completed"] or ["answer"]
        fields = "".join(f"[[ ## {name} ## ]]\n{self.answer}\n\n" for name in dict.fromkeys(names))
        return fields + "[[ ## completed ## ]]"


    def message(self, request: dict[str, Any]) -> dict[str, Any]:
        """Anthropic's Messages API: the same usage (42 in / 17 out), a tool call when one is forced."""
        tool = request.get("tool_choice") or {}
        if request.get("tools") and tool.get("type") == "tool":
            content: list[dict[str, Any]] = [{"type": "tool_use", "id": "toolu_0", "name": tool.get("name", ""),
                                              "input": self.tool_arguments}]
            stop = "tool_use"
        else:
            content, stop = [{"type": "text", "text": self.answer}], "end_turn"
        return {"id": f"msg_{len(self.requests)}", "type": "message", "role": "assistant",
                "model": str(request.get("model", "")), "content": content, "stop_reason": stop,
                "stop_sequence": None, "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": COMPLETION_TOKENS}}


def _forced_tool(request: dict[str, Any]) -> str:
    choice = request.get("tool_choice")
    if request.get("tools") and isinstance(choice, dict):
        return str(choice.get("function", {}).get("name", ""))
    return ""


@contextmanager
def serve_fake_llm(llm: FakeLLM | None = None) -> Iterator[FakeLLM]:
    llm = llm or FakeLLM()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
            length = int(self.headers.get("content-length") or 0)
            request = json.loads(self.rfile.read(length) or b"{}")
            path = self.path.split("?", 1)[0].rstrip("/")
            if path.endswith("/messages"):  # Anthropic
                llm.requests.append(request)
                self._reply(200, llm.message(request))
                return
            if not path.endswith("/chat/completions"):
                self._reply(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
                return
            if request.get("stream"):
                self._reply(400, {"error": {"message": "streaming is not served here", "type": "invalid_request_error"}})
                return
            llm.requests.append(request)
            self._reply(200, llm.completion(request))

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    llm.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="fake-llm", daemon=True)
    thread.start()
    try:
        yield llm
    finally:
        server.shutdown()
        server.server_close()
