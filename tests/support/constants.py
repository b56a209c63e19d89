"""The test credentials and the database backends every live test runs on."""

PSK = "test-psk-0123456789abcdefghijklmnop"
MASTER_KEY = "test-master-key-0123456789abcdefghij"
SECRET_KEY = "test-secret-key-0123456789abcdefghijklmnop"
WEBHOOK_SECRET = "whsec-test-0123456789abcdefghijklmnopqrstuv"

BACKENDS = ["sqlite", "postgres"]
