"""``python -m training``: see :mod:`training.cli`."""

from bench.distributed import end_launched_process
from training.cli import main

if __name__ == "__main__":  # pragma: no branch
    status = main()
    end_launched_process(status)  # under `accelerate launch`: see its docstring
    raise SystemExit(status)
