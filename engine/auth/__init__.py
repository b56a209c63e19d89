"""Authentication: credentials, caller identity and the auth/scope/rate-limit interceptor."""
