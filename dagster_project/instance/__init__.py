"""What the Dagster instance's settings (``deploy/dagster.yaml``) name: the run launcher."""
