"""ASGI entry point for uvicorn: `uvicorn caredesk.asgi:app`."""

from caredesk.app import create_app

app = create_app()
