"""Dsp → hit with pygama's ``build_hit``; the run's calibration parameters fill the hit configuration."""

# mypy: ignore-errors
import argparse
import json
from pathlib import Path

from pygama.hit import build_hit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--pars", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    config = json.loads(Path(args.config).read_text())
    pars = json.loads(Path(args.pars).read_text())
    for name, operation in config["operations"].items():
        operation.setdefault("parameters", {}).update(pars.get(name, {}))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    build_hit(args.input, args.output, hit_config=config, wo_mode="of")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
