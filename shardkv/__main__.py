import sys

from shardkv.cli import main

sys.exit(main())
