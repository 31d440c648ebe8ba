"""Where a sweep's trials run: worker processes on this machine, a Ray cluster, or a pool
of threads that each drive a session on a server."""
