"""Messaging sessions: bindings to agencies and tenants, conversations, messages, providers."""
