"""The base class of every OTBTF Processing algorithm."""

from __future__ import annotations

import html
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterDefinition,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from otbtf_qgis.core.errors import OtbtfError
from otbtf_qgis.processing.resources import icon
from otbtf_qgis.processing.runner import run_job

GROUPS = {
    "sampling": "Sampling",
    "training": "Training",
    "inference": "Inference",
    "validation": "Validation",
    "tools": "Tools",
}


def help_html(text: str) -> str:
    """``text`` as QGIS shows a short help: HTML-escaped, its line breaks kept as paragraph breaks.

    QGIS wraps each line of ``shortHelpString()`` in ``<p>…</p>`` without escaping it, so a
    plain ``input_<source>`` would be read as a tag and vanish.
    """
    return html.escape(text, quote=False)


@contextmanager
def parameter_errors() -> Iterator[None]:
    """Turn the core's errors (``PARAMETER: message``) raised inside the block into ``QgsProcessingException``."""
    try:
        yield
    except OtbtfError as exc:
        raise QgsProcessingException(str(exc)) from exc


class OtbtfAlgorithm(QgsProcessingAlgorithm):
    """Common plumbing: ids, groups, icons, translation, help, and running a worker job.

    Subclasses set :attr:`NAME`, :attr:`DISPLAY_NAME`, :attr:`GROUP` (a key of
    :data:`GROUPS`) and :attr:`HELP` (plain text, escaped by :meth:`shortHelpString`), and
    implement ``initAlgorithm`` and ``processAlgorithm``.

    An algorithm that runs a worker job (the command of its :attr:`NAME`) implements
    :meth:`build_config`, and its ``processAlgorithm`` is only::

        config = self.build_config(parameters, context, feedback)
        result = self.run_job(self.NAME, config_to_dict(config), feedback, outputs=[...])
        return {...}  # the outputs, from the config and the result

    so that tests check every parameter value against the config without running a job.
    """

    NAME = ""
    DISPLAY_NAME = ""
    GROUP = "tools"
    HELP = ""

    def tr(self, text: str) -> str:
        """Translate ``text`` in the plugin's context."""
        return str(QCoreApplication.translate("OtbtfAlgorithm", text))

    def createInstance(self) -> OtbtfAlgorithm:  # noqa: N802 - QGIS API name
        """A fresh instance of the same algorithm."""
        return type(self)()

    def name(self) -> str:
        """The stable, lowercase id (``otbtf:<name>``)."""
        return self.NAME

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        """The translated name shown in the toolbox."""
        return self.tr(self.DISPLAY_NAME)

    def group(self) -> str:
        """The translated group name."""
        return self.tr(GROUPS[self.GROUP])

    def groupId(self) -> str:  # noqa: N802 - QGIS API name
        """The stable, lowercase group id."""
        return self.GROUP

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API name
        """Help shown in the algorithm dialog: :attr:`HELP` translated, then HTML-escaped (see :func:`help_html`)."""
        return help_html(self.tr(self.HELP))

    def icon(self) -> QIcon:
        """The algorithm's icon."""
        return icon(self.NAME)

    def build_config(self, parameters: dict[str, Any], context: QgsProcessingContext,
                     feedback: QgsProcessingFeedback | None) -> Any:
        """The config of the worker job from the parameter values, without running anything.

        The config is the dataclass of :mod:`otbtf_qgis.core.jobs.configs` named after the
        command (:attr:`NAME`): exactly what the worker receives. Each parameter is read once
        (a destination set to ``TEMPORARY_OUTPUT`` gets a new path at every read), and what
        can be checked without opening the files is checked here, lists typed as text by
        :mod:`otbtf_qgis.core.jobs.params`.

        Raises:
            QgsProcessingException: starting with the name of the parameter whose value
                cannot be used (``PATCH_SIZES: ...``).
            NotImplementedError: the algorithm runs no worker job.
        """
        raise NotImplementedError(f"{self.NAME} runs no worker job")

    def raster_path(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext) -> str:
        """The file of the raster layer parameter ``name`` (``""`` when an optional one is left out).

        Raises:
            QgsProcessingException: naming ``name`` when a value is given that is no raster QGIS
                can open, or when a mandatory one is missing.
        """
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if isinstance(layer, QgsRasterLayer):
            return str(layer.source())
        value = parameters.get(name)
        if value is not None and value != "":
            raise QgsProcessingException(f"{name}: '{value}' is not a raster QGIS can open.")
        if self.parameterDefinition(name).flags() & QgsProcessingParameterDefinition.FlagOptional:
            return ""
        raise QgsProcessingException(f"{name}: give a raster.")

    def vector_path(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext,
                    feedback: QgsProcessingFeedback | None) -> str:
        """A GeoPackage or Shapefile the worker reads for the feature source parameter ``name``.

        The layer's own file when it is one (QGIS writes a GeoPackage copy otherwise, or of
        the selected features only when asked); ``""`` when an optional one is left out.

        Raises:
            QgsProcessingException: naming ``name`` when a value is given that is no vector
                layer QGIS can open, or when a mandatory one is missing.
        """
        if self.is_empty(parameters, name):
            if self.parameterDefinition(name).flags() & QgsProcessingParameterDefinition.FlagOptional:
                return ""
            raise QgsProcessingException(f"{name}: give a vector layer.")
        path = self.parameterAsCompatibleSourceLayerPath(parameters, name, context, ["gpkg", "shp"], "gpkg",
                                                         feedback)
        if not path:
            raise QgsProcessingException(f"{name}: '{parameters[name]}' is not a vector layer QGIS can open.")
        return str(path)

    @staticmethod
    def is_empty(parameters: dict[str, Any], name: str) -> bool:
        """Whether the parameter ``name`` is left out or given as blank text."""
        value = parameters.get(name)
        return value is None or (isinstance(value, str) and not value.strip())

    def optional_int(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext) -> int | None:
        """The value of the optional integer parameter ``name``, or ``None`` when it is left empty."""
        return None if self.is_empty(parameters, name) else self.parameterAsInt(parameters, name, context)

    def optional_double(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext) -> float | None:
        """The value of the optional number parameter ``name``, or ``None`` when it is left empty."""
        return None if self.is_empty(parameters, name) else self.parameterAsDouble(parameters, name, context)

    def run_job(self, command: str, params: Mapping[str, Any], feedback: QgsProcessingFeedback | None,
                outputs: Iterable[str] = ()) -> dict[str, Any]:
        """Run ``command`` in the worker (see :func:`otbtf_qgis.processing.runner.run_job`)."""
        return run_job(command, params, feedback, outputs)
