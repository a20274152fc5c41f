"""The parts of a running run, one concern per module, composed by :class:`engine.runner.Runner`.

planner (items into SQLite once), feeder (pending pages → batches → bounded queue, retry
waits), workers (the fixed pool), ledger (item states, counts, batches, checkpoints),
control (state, gate, commands, halting), telemetry (samples, live row, snapshot).
"""
