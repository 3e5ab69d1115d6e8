"""Fleet sweeps: one task sweep spread over several benchmark hosts with Dask `distributed`.

A Dask scheduler and one worker per host (`--nworkers 1 --nthreads 1 --resources
bench_host=1`); every task the workbench sends there carries the `bench_host`
resource, so one configuration runs alone on its host at a time. Hosts of the same
kind (same hardware and software: `inventory.host_class`) share the configurations
between them; hosts of different kinds each measure every configuration, so the run
compares them. Rows come back to the client and are stored in one run as each
configuration finishes.

Modules: `cluster` (connect; start a local scheduler and workers), `inventory` (each
worker's fingerprint and class), `select` (`--hosts`), `hostside` (what runs on a
worker), `artifacts` (exports per architecture; artifacts by content hash),
`sweep` (submit, collect, faults, resume).
"""
