"""API: the FastAPI app, settings, storage and migrations, embedded services, the CLI and the
composition root (`Runtime`) that wires the other packages together.

Contract: `create_app(settings)` is the whole service; its lifespan starts and stops every
part. Other packages never import `api`.
"""
