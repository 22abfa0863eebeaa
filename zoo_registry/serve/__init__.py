"""``zoo serve``: models behind the OpenAI HTTP API; ``zoo chat`` shares its engine.

- :mod:`.engine`: the model thread (all MLX work), the job queue, prompt-prefix reuse, stop strings;
- :mod:`.protocol`: OpenAI request validation and response/chunk building (no web framework);
- :mod:`.app`: the ASGI application (FastAPI on Starlette, served by uvicorn), auth, body limit.

Importing this package imports neither MLX nor the web framework.
"""
