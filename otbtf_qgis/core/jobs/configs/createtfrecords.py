"""Settings of the ``createtfrecords`` job (numpy-, GDAL- and TensorFlow-free, shared by Processing and the CLI).

The job itself is :func:`otbtf_qgis.core.data.createtfrecords.run`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CreateTFRecordsConfig:
    """Settings of the TFRecords conversion (see :mod:`otbtf_qgis.core.data.createtfrecords`)."""

    inputs: tuple[str, ...] = field(metadata={"param": "INPUT", "help": "patches folders (train, valid, test, ...)"})
    output_dir: str = field(metadata={"param": "OUTPUT_DIR", "help": "output folder"})
    n_samples_per_shard: int = field(default=100, metadata={"param": "N_SAMPLES_PER_SHARD",
                                                            "help": "samples per .records file"})
    shuffle: bool = field(default=True, metadata={"param": "SHUFFLE", "help": "write the samples in random order"})
    seed: int = field(default=0, metadata={"param": "SEED", "help": "seed of the random order"})
    drop_remainder: bool = field(default=False, metadata={
        "param": "DROP_REMAINDER", "help": "drop the samples that do not fill a last shard (OTBTF's default)"})
