"""zoo-toy's hooks: one architecture, registered lazily as strings."""

from zoo_registry import hookimpl


@hookimpl
def register_architectures(register):
    register(
        "zoo_toy",
        model="zoo_toy.model:Model",
        config_schema="zoo_toy:schemas/zoo_toy.config.schema.json",
        description="an embedding, one SwiGLU MLP and a tied head",
    )
