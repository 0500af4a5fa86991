"""The agent workspace: server-rendered pages and htmx partials, live over the agents' real-time stream."""
