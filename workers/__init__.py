"""Provider-pinned Celery workers: they create sandboxes, run snippets, and record samples."""
