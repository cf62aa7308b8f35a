"""Settings of the ``receptivefield`` job (the job is :func:`otbtf_qgis.core.models.receptivefield.run`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ReceptiveFieldConfig:
    """Which SavedModel to analyse, for which input size."""

    model: str = field(metadata={"param": "MODEL", "help": "SavedModel folder"})
    input_size: int = field(default=64, metadata={
        "param": "INPUT_SIZE", "help": "rows and columns of the first input, in pixels (others scaled like their "
                                       "training patches, per axis)"})
