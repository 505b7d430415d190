"""``python -m hyperq`` runs the ``hyperq`` command line."""
from hyperq.cli import main

main()
