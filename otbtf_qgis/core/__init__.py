"""The QGIS-free core of otbtf_qgis: datasets, models, training, serving, raster I/O.

Importing this package is cheap: TensorFlow is imported only by the modules that need
it. Nothing here imports QGIS or PyQt.
"""
