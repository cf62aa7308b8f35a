"""``python -m otbtf_qgis.core``: the worker command line (see :mod:`otbtf_qgis.core.jobs.worker`)."""

import sys

from otbtf_qgis.core.jobs.worker import main

if __name__ == "__main__":
    sys.exit(main())
