"""How the LLM judge reaches a model: one pooled HTTP session for OpenAI-compatible endpoints,
litellm for every other provider.

``litellm.acompletion`` costs several milliseconds of CPU per call, about 25 times a plain POST.
For endpoints that speak the OpenAI chat API (OpenAI, vLLM, Ollama, llama.cpp and the many hosted
providers that copy it) ``HTTPTransport`` sends the same request from a pooled aiohttp session.
litellm still decides which transport a model string gets (``resolve``). Every transport returns
the same ``Completion`` and raises the same ``TransportError``, so the judge behaves identically on
either; its owner closes it with ``aclose``.

    base.py     Completion, TransportError, the Transport protocol
    http.py     HTTPTransport: OpenAI-compatible /chat/completions over its own pooled session
    reply.py    parse_completion: a chat completion body as a Completion, whichever transport
                carried it (live or batched), malformed ones refused alike
    litellm.py  LitellmTransport, litellm's lazy import, ``resolve`` (a model's transport)
"""

from judge.transports.base import Completion, Transport, TransportError
from judge.transports.http import HTTPTransport
from judge.transports.litellm import LitellmTransport, litellm_module, model_problem, resolve
from judge.transports.reply import parse_completion

__all__ = [
    "Completion",
    "HTTPTransport",
    "LitellmTransport",
    "Transport",
    "TransportError",
    "litellm_module",
    "model_problem",
    "parse_completion",
    "resolve",
]
