"""The CarRacing study (``README.md`` here), from the repository root::

    python results/carracing/run.py            # train + evaluate (rerun to resume), then the report
    python results/carracing/run.py --report   # only the report, from the finished run in runs/carracing
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from envstudy import main  # noqa: E402

if __name__ == "__main__":
    # CarRacing's returns can be negative (-0.1 per frame, -100 off the playfield): no raw target/source ratio;
    # ratios and darla compare's inputs are returns minus the random policy's mean on the same domain
    # "gas" (discrete action 3) held all episode: an untrained greedy PPO policy often does just that (smoke run)
    main(HERE, raw_ratio=False, normalise_compare=True, digits=1, references={"gas": 3})
