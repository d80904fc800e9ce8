import sys

from local_cluster.cli import main

sys.exit(main(sys.argv[1:]))
