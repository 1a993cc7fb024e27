"""matplotlib's pyplot with the file-only Agg backend, chosen once for every plot (runs have no display)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["plt"]
