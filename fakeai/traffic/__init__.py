"""The traffic module: drive a server and measure what a client sees, with a client lean enough that
its own cost does not show in what it measures.

``wire`` speaks HTTP/1.1 over sockets, stamping bytes when the kernel received them; ``client`` times one chat
request with it and parses the answer after; ``run`` keeps a number of such requests in flight (closed
loop) or starts them on a schedule (open loop, ``rps``); ``python -m fakeai.traffic`` runs it in a process
of its own and prints one JSON report, so a test or benchmark measures from outside the process that
schedules its own work. ``phase_load`` sends a scenario phase's (or check-dashboards') traffic mix.
"""

API_KEY_ENV = "FAKEAI_TRAFFIC_API_KEY"
"""The bearer token the built-in loads send, for a server started with ``--api-keys``: read from the
environment, so it never shows in a process list."""
