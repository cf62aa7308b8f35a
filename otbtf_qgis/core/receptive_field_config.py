"""Settings of the ``receptivefield`` job (TensorFlow-free; the job is :func:`otbtf_qgis.core.receptive_field.run`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ReceptiveFieldConfig:
    """Which SavedModel to analyse, for which input size."""

    model: str = field(metadata={"param": "MODEL", "help": "SavedModel folder"})
    input_size: int = field(default=64, metadata={
        "param": "INPUT_SIZE", "help": "input size in pixels (the first input; others scaled like their patches)"})
