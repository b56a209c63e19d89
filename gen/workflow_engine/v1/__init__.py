"""Generated code for workflow_engine.v1 (do not edit; run `make gen`)."""
