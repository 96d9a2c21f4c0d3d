"""Raw → dsp with dspeed's ``build_dsp``."""

# mypy: ignore-errors
import argparse
from pathlib import Path

from dspeed import build_dsp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    build_dsp(args.input, args.output, dsp_config=args.config, write_mode="r")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
