"""The demo business: an online outdoor-gear shop, for `caredesk demo` and `make run`."""
