"""signlab: learn how deep image classifiers work by training them on Sign Language MNIST.

The package holds all the logic; the Streamlit pages and the command line call into it.
``docs/architecture.md`` lists the layers and what each module owns. Importing the package
itself loads nothing heavy (no torch), so torch-free modules such as ``labels`` and ``figures``
stay light.

It does one thing on import: where the environment does not say otherwise, it tells GNU OpenMP
(the thread pool of torch's CPU build) to spin :data:`OMP_SPIN` times before a waiting thread
sleeps, instead of libgomp's 300,000. A student's laptop trains beside the browser that watches
it; with two threads and one core busy elsewhere, every parallel region waited for a thread the
scheduler had set aside while its partner spun away the core it needed: s2net's 200 steps took
about 80 times as long as on an idle machine (2 s against 90-160 s), the lecture ConvNet's about
16 times. At 1,000 spins they take 2.3-2.5 times as long, and on an idle machine the same
(s2net) or 5% longer (the lecture ConvNet at batch 32), with the same weights to the bit: how long
a thread waits does not change what it computes. ``python bench/spin.py`` measures it
(docs/speed-research.md, Part 26). libgomp reads the variable once, when torch loads it, so this
must run before ``import torch``: it does for ``python -m signlab``, its worker processes (they
inherit it) and the dashboard (``serve.py`` imports the package before torch). A process that
imported torch first keeps libgomp's default, as the benchmarks' lecture loop does.
"""
import os

__version__ = "0.1.0"

OMP_SPIN = "1000"  # libgomp's own spin count when it has more threads than cores
os.environ.setdefault("GOMP_SPINCOUNT", OMP_SPIN)
