"""The QGIS Processing side of otbtf_qgis: provider and algorithms.

Algorithms are thin: they read parameters, build a core config, run the job in the
worker process (TensorFlow is never imported here) and return the outputs.
"""
