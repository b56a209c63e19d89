"""Workflow Engine: one WhatsApp automation hub serving many dashboards."""

__version__ = "0.1.0"
