"""HTTP and real-time front door: REST API v1, webhooks, WebSocket/SSE. No business rules here."""
