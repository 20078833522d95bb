"""The OneRoom study (``README.md`` here), from the repository root::

    python results/oneroom/run.py            # train + evaluate (rerun to resume), then the report
    python results/oneroom/run.py --report   # only the report, from the finished run in runs/oneroom
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from envstudy import main  # noqa: E402

if __name__ == "__main__":
    # OneRoom's returns are >= 0 (1 - 0.2 t / 180 at the box, else 0): the raw target/source ratio is defined
    main(HERE, raw_ratio=True, normalise_compare=False, digits=2)
