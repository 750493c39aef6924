"""Platform operations: database migrations, topic creation, readiness checks.

Kept apart from the services so that set-up (Makefile, Helm Job, CI) has one entry point:
``python -m ops migrate|topics|wait``.
"""
