"""gRPC plumbing shared by every service: statuses, the interceptor, the server."""
