"""signlab: learn how deep image classifiers work by training them on Sign Language MNIST.

The package holds all the logic; the Streamlit pages and the command line call into it.
Modules: ``labels`` (class names, label map, normalisation), ``data`` (dataset), ``models``
(registry), ``config`` (the run configuration), ``trainer`` (the training loop and its events),
``runs`` (run directories), ``evaluate``, ``preprocess`` and ``inference`` (images from outside
the dataset), ``api`` (the operations the CLI and the dashboard share), ``jobs`` (training worker
processes for the dashboard), ``figures`` (plotly charts), ``ui`` (the one Streamlit helper).
"""
from .labels import LETTERS, NUM_CLASSES
from .models import create_model, list_models

__all__ = ["LETTERS", "NUM_CLASSES", "create_model", "list_models"]
__version__ = "0.1.0"
