"""
The project's experiments, run from the repository root with ``python -m workflows.<module>``. They use
``monai_srb`` and its bundles; the package never imports them.

- :mod:`workflows.run_experiments`: the command line of the experiment grids (``--help``), built from
  :mod:`workflows.grid` (grid files, presets, the jobs of a preset), :mod:`workflows.job` (one job through its
  bundle, recorded in MLflow), :mod:`workflows.runner` (the jobs as Ray tasks or one after another, all logging
  to one MLflow server) and :mod:`workflows.results`
  (the runs read back from MLflow: statistics, the markdown table, the summary figure).
- :mod:`workflows.figures`: overlays, effective receptive fields and Grad-CAM tiles of a grid's trained runs.
- :mod:`workflows.benchmark` and :mod:`workflows.amp_check`: speed, memory and mixed precision of the blocks.
- :mod:`workflows.complexity_table`: the paper's Table 3 (parameters and FLOPs one block adds) beside ours.
- :mod:`workflows.quickstart`: a one-minute demonstration of what one SRB_F buys.
"""
