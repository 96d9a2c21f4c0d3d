"""Energy calibration of one run from its calibration files: the reference line's position in trapEmax."""

# mypy: ignore-errors
import argparse
import json
from pathlib import Path

import lh5
import numpy as np


def reference_peak(energy: np.ndarray, cfg: dict) -> float:
    """Position (ADC) of the highest-energy line: the rightmost prominent peak, refined by a median."""
    upper = energy[energy > cfg["search_fraction"] * energy.max()]
    bins = np.arange(upper.min(), upper.max() + cfg["bin_adc"], cfg["bin_adc"])
    counts, edges = np.histogram(upper, bins=bins)
    prominent = np.flatnonzero(counts >= cfg["prominence"] * counts.max())
    coarse = 0.5 * (edges[prominent[-1]] + edges[prominent[-1] + 1])
    window = upper[np.abs(upper - coarse) < cfg["window_adc"]]
    return float(np.median(window))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("dsp", nargs="+")
    args = parser.parse_args()
    cfg = json.loads(Path(args.config).read_text())
    energy = np.concatenate(
        [lh5.read(f"{cfg['channel']}/dsp", f, field_mask=[cfg["energy"]])[cfg["energy"]].nda for f in args.dsp]
    )
    peak = reference_peak(energy, cfg)
    pars = {
        f"{cfg['energy']}_cal": {"a": 0.0, "b": cfg["reference_kev"] / peak},
        "meta": {"reference_kev": cfg["reference_kev"], "peak_adc": peak, "events": int(energy.size)},
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(pars, indent=2) + "\n")
    print(json.dumps(pars))


if __name__ == "__main__":
    main()
