"""Tools: the ``environmentinfo`` report (Python, TensorFlow, GDAL, devices) and ``diagnostics``.

``diagnostics`` exercises the worker protocol (progress, errors, crashes, cancel) without
TensorFlow; the tests of the worker and of the Processing side use it.
"""
