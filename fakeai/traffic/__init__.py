"""The traffic module: drive a server and measure what a client sees, with a client lean enough that
its own cost does not show in what it measures.

``client`` streams one request over raw HTTP (httpx), stamping bytes as they arrive and parsing them
after; ``run`` keeps a number of such requests in flight (closed loop) or starts them on a schedule
(open loop, ``rps``); ``python -m fakeai.traffic`` runs it in a process of its own and prints one JSON
report, so a test or benchmark measures from outside the process that schedules its own work.
"""
