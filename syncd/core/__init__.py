"""Pure core: the model, reconcile (plan + guards), quarantine rules, backoff and time formatting. It
imports nothing of ours and does no I/O, so every decision here is tested with plain data.
"""
