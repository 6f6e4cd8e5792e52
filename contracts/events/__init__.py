"""Event payload models, one module per topic family."""
