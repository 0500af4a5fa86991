"""Infrastructure only: database, jobs, events, security. No business rules live here."""
