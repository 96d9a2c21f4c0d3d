"""prodflow cycle-runner: LEGEND production cycles: tree, config.json, software, Snakemake runs, reprocessing."""
