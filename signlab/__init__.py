"""signlab: learn how deep image classifiers work by training them on Sign Language MNIST.

The package holds all the logic; the Streamlit pages and the command line call into it.
``docs/architecture.md`` lists the layers and what each module owns. Importing the package
itself loads nothing heavy (no torch), so torch-free modules such as ``labels`` and ``figures``
stay light.
"""
__version__ = "0.1.0"
