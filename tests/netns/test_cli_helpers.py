"""The real pyovl executable next to the interpreter running the tests."""

import os
import shutil
import sys

PYOVL = shutil.which("pyovl") or os.path.join(os.path.dirname(sys.executable), "pyovl")
