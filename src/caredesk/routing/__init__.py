"""Who helps whom: team by intent/skill/language, agent by availability and capacity, an honest queue,
business hours, SLA."""
