"""``python -m training``: see :mod:`training.cli`."""

from bench.distributed import end_process
from training.cli import main

if __name__ == "__main__":  # pragma: no branch
    end_process(main())  # under `accelerate launch`, without the interpreter's teardown: see its docstring
