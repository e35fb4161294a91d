"""fastconv.viz is fastconv.toolbox.viz (the seeds' toolbox); this name stays importable and is the
same module object."""

import sys

from .toolbox import viz as _viz

sys.modules[__name__] = _viz
