"""Settings shared by the whole test suite."""

import os

# No model hub is reachable here: never download at run time; the base model is a package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
