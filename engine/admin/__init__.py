"""The engine admins' view: every dashboard, session and delivery; system health."""
