"""One sync cycle: reading desired state (full or delta), settling pending writes, planning, guarding,
applying and recording. Uses the adapters (`graph`, `smartcomm`, `store`) and the core.
"""
