"""Give an all-in-one model the degradation detector of another one with the same network config.

    python scripts/swap_detector.py DONOR TARGET [-o OUTPUT]

The detector (and its version) of DONOR replaces TARGET's; TARGET's network is kept. OUTPUT defaults to
TARGET (rewritten in place). The shipped sharp all-in-one model takes the plain one's phase-5 detector this
way (configs/allinone_detect.yaml): both networks are conditioned on the same vector, the true degradation.
"""

from __future__ import annotations

import argparse
import dataclasses

from sirestore.checkpoint import load_weights, save_weights
from sirestore.model import FlowModel, split_state


def with_detector(target: FlowModel, donor: FlowModel) -> FlowModel:
    """target's network with donor's detector; both need a detector and the same network config."""
    if target.detector is None or donor.detector is None or target.cfg.net != donor.cfg.net:
        raise ValueError("both models need a detector and the same network config")
    model = FlowModel(dataclasses.replace(target.cfg, detector=donor.cfg.detector))
    state = split_state(target.state_dict())[0] | split_state(donor.state_dict())[1]
    model.load_state_dict(state)
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("donor", help="weights whose detector is taken")
    parser.add_argument("target", help="weights whose network is kept")
    parser.add_argument("-o", "--output", help="where to write the result (default: target)")
    args = parser.parse_args()
    save_weights(with_detector(load_weights(args.target), load_weights(args.donor)), args.output or args.target)
    print(f"{args.output or args.target}: the network of {args.target}, the detector of {args.donor}")


if __name__ == "__main__":
    main()
