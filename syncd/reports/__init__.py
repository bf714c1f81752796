"""What syncd tells people about its state: `explain`, `history`, the status document and the printed
summaries shared by the CLI and the demo. Reads through the cycle layer and the adapters; writes nothing
remote.
"""
