"""Webhooks: provider ingress (and, later, the outbox, dispatcher and signing)."""
