import sys

from docjobs.runner.main import main

sys.exit(main())
