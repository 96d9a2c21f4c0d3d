"""Write one raw-tier LH5 file of synthetic HPGe waveforms for a file key.

Each event is a step of height ``energy * adc_per_kev`` on a noisy baseline, decaying with the preamplifier's
time constant. Energies are drawn from the gamma lines of the datatype (and a flat continuum below them); the
gain drifts from run to run, so the hit tier is right only if the per-run calibration is.
"""

# mypy: ignore-errors
import argparse
import hashlib
import json
from pathlib import Path

import lh5
import numpy as np
from lgdo import Array, Table, WaveformTable


def seed_of(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def run_gain(sim: dict, key: str) -> float:
    """The ADC/keV of the run in ``key`` (``l200-p03-r001-cal-...``): nominal gain times a small drift."""
    run = "-".join(key.split("-")[:3])
    drift = (seed_of(run) % 2001 - 1000) / 1000 * sim["gain_drift"]
    return sim["adc_per_kev"] * (1 + drift)


def energies(sim: dict, datatype: str, n: int, rng: np.random.Generator) -> np.ndarray:
    spec = sim["datatypes"][datatype]
    lines = np.asarray(spec["lines_kev"], dtype=float)
    weights = np.asarray(spec["weights"], dtype=float)
    n_cont = int(n * spec["continuum_fraction"])
    peak = rng.choice(lines, size=n - n_cont, p=weights / weights.sum())
    peak += rng.normal(0, sim["resolution_kev"], size=peak.size)
    cont = rng.uniform(spec["continuum_kev"][0], spec["continuum_kev"][1], size=n_cont)
    out = np.concatenate([peak, cont])
    rng.shuffle(out)
    return out


def waveforms(sim: dict, amplitude: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ns, dt = sim["samples"], sim["dt_ns"]
    t = np.arange(ns, dtype=float)
    since = np.clip(t - sim["t0_samples"], 0, None)
    rise = np.clip(since * dt / sim["rise_ns"], 0, 1)
    pulse = rise * np.exp(-since * dt / (sim["tau_us"] * 1000))
    wf = (
        sim["baseline_adc"]
        + amplitude[:, None] * pulse[None, :]
        + rng.normal(0, sim["noise_adc"], (amplitude.size, ns))
    )
    return np.round(wf).astype(np.uint16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    sim = json.loads(Path(args.config).read_text())
    datatype = args.key.split("-")[3]
    rng = np.random.default_rng(seed_of(args.key))
    n = sim["events_per_file"]
    amplitude = energies(sim, datatype, n, rng) * run_gain(sim, args.key)
    table = Table(
        size=n,
        col_dict={
            "waveform": WaveformTable(
                t0=0.0, t0_units="ns", dt=float(sim["dt_ns"]), dt_units="ns", values=waveforms(sim, amplitude, rng)
            ),
            "baseline": Array(np.full(n, sim["baseline_adc"], dtype=np.uint16)),
            "daqenergy": Array(np.round(amplitude).astype(np.uint32)),
            "timestamp": Array(np.sort(rng.uniform(0, 3600, n))),
        },
    )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    lh5.write(table, "raw", args.output, group=sim["channel"], wo_mode="of")
    print(f"wrote {n} events to {args.output}")


if __name__ == "__main__":
    main()
