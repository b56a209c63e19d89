"""Dashboard registry: registrations, API keys and dashboard configuration."""
