"""The parts of bench/sync_cycles.py, the command (run that script; these modules are not run on their own):

- `common`: paths, the `BenchError` that ends a run, peak RSS, waiting for the parent, the SIGTERM handler;
- `emulators`: the emulator child processes (`--serve graph|smartcomm`) and the parent's `Child` and
  `control` (an emulator's control API);
- `workers`: the worker processes (`--worker cycles|write-baseline`): syncd's cycles, the bare write loop;
- `tallies`: the requests an emulator received, by kind, and what a worker logged;
- `harness`: one size's emulators, configuration, scenarios, baselines and floor (bench/scale.py and
  bench/rate_limit.py use it too);
- `report`: the targets and the printed report;
- `read_1m`: `--read-1m`, the read side of a full cycle at 1,000,000 users.

The children and workers are bench/sync_cycles.py again (`common.COMMAND`), so each starts as the command
does, with bench/ first on sys.path.
"""
