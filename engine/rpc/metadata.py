"""The gRPC metadata keys the engine's processes exchange: servicers, the interceptor and the REST
gateway all name them from here, so no servicer depends on the gateway."""

REQUEST_ID_KEY = "x-request-id"
#: Sent by the REST gateway: its token, and the HTTP client's address (trusted only with the token).
GATEWAY_TOKEN_KEY = "x-engine-gateway"  # noqa: S105 (a metadata key, not a secret)
FORWARDED_FOR_KEY = "x-forwarded-for"
#: Response header metadata a servicer sets to choose the HTTP success status (grpc-gateway's
#: documented pattern), e.g. 202 for accepted-but-not-processed. Not shown as Grpc-Metadata-*.
HTTP_CODE_KEY = "x-http-code"
#: The trailer carrying a google.rpc.Status with the error's details.
DETAILS_KEY = "grpc-status-details-bin"
