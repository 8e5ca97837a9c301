"""The tuning lab: sweeps of precision × max batch size × concurrency (× max wait), stored per model version
and machine, answered against an SLA, exported, and applied to the engine."""
