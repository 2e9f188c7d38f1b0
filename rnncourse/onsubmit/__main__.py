import os
import sys

from ..workerpool import die_with_parent

# First, before the imports that take seconds: stop with the hub that started this service. The hub names itself
# (jupyterhub_config.py); a hub that died while this process started has already left it to init, which never dies.
die_with_parent(int(os.environ.get("SECTION09_HUB_PID") or os.getppid()))

from .service import main  # noqa: E402

sys.exit(main())
