"""Benchmark async-uploader against peer tools (s5cmd, rclone, AWS CLI, obstore, naive boto3) on SeaweedFS.

Lives here, not in the test suite, because full runs take long and need the peers' separate venv; see
``python -m tools.bench --help``. Measure before optimising, and keep the measurement reproducible.
"""
