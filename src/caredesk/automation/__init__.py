"""Self-service on the business's own systems: connectors, declared actions, policies, the bot conductor,
case briefs."""
