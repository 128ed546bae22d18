"""finegate: one harness for choosing, fine-tuning and shipping LLMs safely.

Importing this package is cheap on purpose: heavy dependencies (torch, transformers, FastAPI)
are imported inside the backends and commands that need them.
"""

from finegate.errors import FinegateError

__all__ = ["FinegateError", "__version__"]

__version__ = "0.1.0"
