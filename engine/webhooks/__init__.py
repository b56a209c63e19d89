"""Webhooks: provider ingress, and delivery to dashboards (outbox, dispatcher, Standard Webhooks
signing, the deliveries API)."""
