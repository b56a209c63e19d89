"""Generated code for the workflow_engine protos."""
