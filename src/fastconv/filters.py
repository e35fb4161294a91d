"""fastconv.filters is fastconv.toolbox.filters (the seeds' toolbox); this name stays importable and is the
same module object."""

import sys

from .toolbox import filters as _filters

sys.modules[__name__] = _filters
