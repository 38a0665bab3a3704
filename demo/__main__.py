"""``python -m demo``: run the demo network (see :mod:`demo.network`)."""

from demo.network import main

main()
