"""One model thread that owns MLX: loads models, runs generation jobs one at a time, reuses prompts.

MLX binds its streams to the thread that created them, and mlx-lm creates its generation stream
when it is imported, so every MLX call of a server must happen on one thread. :class:`Engine`
starts that thread; the HTTP side (or ``zoo chat``) submits :class:`Job` objects and reads their
events from a thread-safe queue. Jobs run strictly in arrival order, so two requests never
interleave in one KV cache and a request with a seed gives the same tokens whatever else is
queued.

Prompt-prefix reuse (what mlx-lm's server calls its prompt cache): after a job the engine keeps
that job's KV cache and the token ids it holds (prompt plus generated). The next job's prompt is
compared with them; the cache is trimmed back to the longest common prefix
(``mlx_lm.models.cache.trim_prompt_cache``) and only the rest of the prompt is prefilled. A chat
that sends its whole history every turn therefore pays only for the new turn.

Generation is the chat package's loop (:func:`zoo_registry.chat.loop.steps`, the one ``zoo
generate`` runs): it takes the kept cache, the stop strings, the request's logits processors and
the job's cancellation, and gives each token's id and log-probabilities.

Only one model is in memory at a time unless ``max_loaded`` says more: a job for a model that is
not loaded unloads the least recently used one first. Loading happens on the model thread too.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Union

from ..chat.loop import StopMatcher  # noqa: F401 - importable from here as before
from ..errors import ConfigError, UnknownNameError

_STOP = object()


@dataclass
class Job:
    """One generation request; :class:`Event` objects come out of ``events``.

    The prompt is either ``messages`` (chat messages, rendered on the model thread with the
    model's chat template, ``tools`` and ``enable_thinking``) or ``prompt`` (plain text, or a list
    of token ids, sent as is). ``sampling``: ``temperature``, ``top_p``, ``top_k``, ``min_p``,
    ``repetition_penalty`` given by the client; what it leaves out comes from the checkpoint's
    ``generation_config.json``.
    """

    model: Optional[str] = None
    messages: Optional[List[dict]] = None
    prompt: Union[str, List[int], None] = None
    tools: Optional[list] = None
    enable_thinking: Optional[bool] = None
    max_tokens: int = 256
    sampling: Dict[str, Any] = field(default_factory=dict)
    processors: Dict[str, Any] = field(default_factory=dict)  # logit_bias, presence/frequency_penalty (mlx-lm's)
    seed: Optional[int] = None
    stop: Sequence[str] = ()
    logprobs: Optional[int] = None  # None: none; k >= 0: the sampled token's log-probability and the k most likely
    parse: bool = True  # split reasoning / answer / tool calls with the model's output parser
    events: "queue.Queue[Event]" = field(default_factory=queue.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    on_event: Optional[Callable[[], None]] = None  # called on the model thread after each event is queued

    def cancel(self) -> None:
        """Stop at the next token (the client went away); the job ends with ``finish_reason='cancelled'``."""
        self.cancelled.set()

    def __iter__(self) -> Iterator["Event"]:
        """Block and yield events until the final one (for callers on a plain thread)."""
        while True:
            event = self.events.get()
            yield event
            if event.final:
                return


@dataclass
class Event:
    """A piece of a job's output: answer ``text``, ``reasoning``, ``tool_calls`` (parsed), and the
    token with its log-probabilities. The ``final`` event carries the finish reason, the usage
    counts and any error."""

    text: str = ""
    reasoning: str = ""
    tool_calls: tuple = ()
    tokens: List[int] = field(default_factory=list)
    logprobs: List[dict] = field(default_factory=list)  # per token: {"token", "logprob", "top": [(id, lp)]}
    final: bool = False
    finish_reason: Optional[str] = None  # "stop" | "length" | "tool_calls" | "cancelled" | "error"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    error: Optional[BaseException] = None

    def absorb(self, parts) -> None:
        """Add the output splitter's events (answer text, reasoning, tool calls) to this one."""
        for part in parts:
            self.text += part.text
            self.reasoning += part.reasoning
            self.tool_calls += tuple(part.tool_calls)


@dataclass
class Loaded:
    name: str
    generator: Any  # zoo_registry.chat.TextGenerator
    cache: Optional[list] = None
    cache_tokens: List[int] = field(default_factory=list)


class Engine:
    """Serve generation jobs for a fixed list of models on one model thread.

    ``models`` are what ``zoo_registry.load`` accepts (card names, folders, repo ids); they are
    the ids clients use. ``loader(name)`` returns a :class:`~zoo_registry.chat.TextGenerator` and
    runs on the model thread; the default is ``TextGenerator.load(name, **load_options)``
    (:func:`zoo_registry.load`'s options: the weight options, and ``registry`` for the plugins to
    load with).
    """

    def __init__(self, models: Sequence[str], *, loader: Optional[Callable[[str], tuple]] = None,
                 load_options: Optional[dict] = None, preload: bool = True, prompt_cache: bool = True,
                 max_loaded: int = 1):
        if not models:
            raise ConfigError("zoo serve needs at least one model (a card name, a folder or a repo id)")
        self.models = list(dict.fromkeys(models))
        self._loader = loader
        self._load_options = dict(load_options or {})
        self.prompt_cache = prompt_cache
        self._jobs: "queue.Queue[Any]" = queue.Queue()
        self._calls: "queue.Queue[Any]" = queue.Queue()
        if max_loaded < 1:
            raise ConfigError(f"max_loaded must be at least 1, got {max_loaded}")
        self.max_loaded = max_loaded
        self._loaded: Dict[str, Loaded] = {}  # least recently used first
        self.counts = {"completed": 0, "cancelled": 0, "failed": 0}  # jobs by outcome, for /health
        self._ready = threading.Event()
        self._startup_error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="zoo-model", daemon=True)
        self._thread.start()
        if preload:
            self.call(lambda: self._ensure(self.models[0]))

    # -- the client side ------------------------------------------------------------------------
    def resolve_model(self, name: Optional[str]) -> str:
        """The served model a request names (the first one when it names none)."""
        if not name:
            return self.models[0]
        if name in self.models:
            return name
        raise UnknownNameError(f"model {name!r} is not served here; served: {', '.join(self.models)}")

    def submit(self, job: Job) -> Job:
        job.model = self.resolve_model(job.model)
        self._jobs.put(job)
        return job

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the model thread (between jobs) and return its result or raise its error."""
        box: "queue.Queue[tuple]" = queue.Queue()
        self._jobs.put(("call", fn, box))
        ok, value = box.get()
        if not ok:
            raise value
        return value

    def tokenizer(self, name: str):
        """The tokenizer of ``name`` if it is loaded (for decoding token ids in responses), else ``None``."""
        entry = self._loaded.get(name)
        return entry.generator.tokenizer if entry is not None else None

    def loaded_names(self) -> List[str]:
        return list(self._loaded)

    def queued(self) -> int:
        return self._jobs.qsize()

    def close(self) -> None:
        self._jobs.put(_STOP)
        self._thread.join(timeout=30)

    # -- the model thread ----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._jobs.get()
            if item is _STOP:
                self._loaded.clear()
                _clear_streams()
                return
            if isinstance(item, tuple) and item and item[0] == "call":
                _, fn, box = item
                try:
                    box.put((True, fn()))
                except BaseException as e:  # noqa: BLE001 - handed back to the caller
                    box.put((False, e))
                continue
            self._serve(item)

    def _ensure(self, name: str) -> Loaded:
        if name in self._loaded:
            self._loaded[name] = self._loaded.pop(name)  # most recently used last
            return self._loaded[name]
        while len(self._loaded) >= self.max_loaded:  # make room before loading: drop the least recently used
            self._loaded.pop(next(iter(self._loaded)))
        import gc

        gc.collect()
        from ..chat import TextGenerator

        if self._loader is not None:
            generator = self._loader(name)
        else:
            generator = TextGenerator.load(name, **self._load_options)
        self._loaded[name] = Loaded(name, generator)
        return self._loaded[name]

    def _emit(self, job: Job, event: Event) -> None:
        if event.final:
            outcome = {"cancelled": "cancelled", "error": "failed"}.get(event.finish_reason, "completed")
            self.counts[outcome] += 1
        job.events.put(event)
        if job.on_event is not None:
            job.on_event()

    def _serve(self, job: Job) -> None:
        if job.cancelled.is_set():
            self._emit(job, Event(final=True, finish_reason="cancelled"))
            return
        try:
            self._generate(job)
        except Exception as e:  # noqa: BLE001 - a failed job must not stop the server; the client gets the error
            self._emit(job, Event(final=True, finish_reason="error", error=e))

    def _reuse(self, entry: Loaded, ids: List[int]):
        """``(cache, ids_to_prefill, cached)``: the kept cache trimmed to the common prefix."""
        from mlx_lm.models.cache import can_trim_prompt_cache, make_prompt_cache, trim_prompt_cache

        if self.prompt_cache and entry.cache is not None and can_trim_prompt_cache(entry.cache):
            old = entry.cache_tokens
            common = 0
            for a, b in zip(old, ids):
                if a != b:
                    break
                common += 1
            common = min(common, len(ids) - 1)  # at least one token must be fed to get logits
            if common > 0:
                trim_prompt_cache(entry.cache, len(old) - common)
                return entry.cache, ids[common:], common
        entry.cache, entry.cache_tokens = None, []
        return make_prompt_cache(entry.generator.model), ids, 0

    def _prompt_ids(self, gen, job: Job):
        """``(ids, rendered_text)`` of the job's prompt."""
        if job.messages is not None:
            prompt = gen.render(job.messages, enable_thinking=job.enable_thinking, tools=job.tools or None)
            return prompt.ids, prompt.text
        if isinstance(job.prompt, str):
            return list(gen.tokenizer.encode(job.prompt)), job.prompt
        return list(job.prompt or []), ""

    def _generate(self, job: Job) -> None:
        """Run ``job`` through the chat package's generation loop, one event per token."""
        import mlx.core as mx

        from ..chat import make_splitter, output_format
        from ..chat.loop import steps

        entry = self._ensure(self.resolve_model(job.model))
        gen = entry.generator
        ids, text = self._prompt_ids(gen, job)
        if not ids:
            raise ConfigError("the prompt is empty")
        sampling = gen.sampling(origin="request", **job.sampling)
        processors = None
        if job.processors:
            from mlx_lm.sample_utils import make_logits_processors

            processors = make_logits_processors(**job.processors)
        fmt = gen.output_format if job.parse else output_format(name="none")[0]
        if job.seed is not None:
            mx.random.seed(job.seed)
        cache, feed, cached = self._reuse(entry, ids)
        entry.cache, entry.cache_tokens = None, []  # not valid again until this job ends
        tokens, called = list(ids), False
        for step in steps(gen.model, gen.tokenizer, feed, splitter=make_splitter(fmt, text), sampling=sampling,
                          max_tokens=job.max_tokens, stop=job.stop, logits_processors=processors, prompt_cache=cache,
                          cancelled=job.cancelled.is_set):
            event = Event(final=step.final)
            event.absorb(step.events)
            called = called or bool(event.tool_calls)
            if not step.final:
                tokens.append(step.token)
                event.tokens.append(step.token)
                if job.logprobs is not None and step.logprobs is not None:
                    event.logprobs.append(_logprobs(mx, step.logprobs, step.token, job.logprobs))
                self._emit(job, event)
                continue
            finish = step.finish_reason
            event.prompt_tokens, event.completion_tokens, event.cached_tokens = len(ids), step.generation_tokens, cached
            event.finish_reason = "tool_calls" if called and finish == "stop" else finish
            if finish != "cancelled":
                # the cache holds the prompt and the generated tokens mlx-lm fed back: its offset says how many
                held = getattr(cache[0], "offset", None) if cache else None
                if isinstance(held, int) and 0 < held <= len(tokens):
                    entry.cache, entry.cache_tokens = cache, tokens[:held]
            self._emit(job, event)


def _clear_streams() -> None:
    """Synchronise and free this thread's MLX streams before it ends.

    Without it, the process may abort at exit ("terminate called without an active exception")
    when MLX tears down a stream whose thread is gone (ml-explore/mlx#3126; ``clear_streams`` came
    with ml-explore/mlx#3395).
    """
    import mlx.core as mx

    clear = getattr(mx, "clear_streams", None)
    if clear is not None:
        clear()


def _logprobs(mx, logprobs, token: int, k: int) -> dict:
    """The sampled token's log-probability and the ``k`` most likely tokens (log-softmax values)."""
    out = {"token": token, "logprob": float(logprobs[token].item()), "top": []}
    if k > 0:
        k = min(k, logprobs.shape[-1])
        top = mx.argpartition(-logprobs, k - 1)[:k]
        values = logprobs[top]
        order = mx.argsort(-values)
        out["top"] = list(zip(top[order].tolist(), values[order].tolist()))
    return out
