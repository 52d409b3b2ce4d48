"""Out to HR systems: events emitted with the facts they report, a durable queue, webhooks and connectors."""
