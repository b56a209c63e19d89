"""REST gateway: generic google.api.http transcoding onto the engine's gRPC services."""
