"""The ``createtfrecords`` job: convert patches folders (train, valid, test, …) to TFRecords.

Each input is the output folder of patches extraction. With one input, ``OUTPUT_DIR``
becomes its TFRecords folder; with several, each goes to ``OUTPUT_DIR/<input folder
name>`` (so ``train``, ``valid`` and ``test`` folders keep their names). Samples are
written in a seeded random order (as OTBTF does, so that shards mix the whole area) or
in their original order; the manifest records the point id of every written sample.

The overwrite rule of :func:`otbtf_qgis.core.data.formats.check_output_folder` applies to
``OUTPUT_DIR``. This module imports TensorFlow only when the job runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from otbtf_qgis.core.jobs.configs.createtfrecords import CreateTFRecordsConfig
from otbtf_qgis.core.data.description import IN_MEMORY_MAX_BYTES, describe_dataset
from otbtf_qgis.core.data.formats import MANIFEST_NAME, TFRECORDS_FORMAT, check_output_folder, write_json
from otbtf_qgis.core.errors import InputError
from otbtf_qgis.core.progress import NullReporter, Reporter
from otbtf_qgis.core.jobs.outputs import atomic_output


def _input_folders(inputs: tuple[str, ...]) -> list[Path]:
    if not inputs:
        raise InputError("no patches folder given. Give the output folder(s) of Patches extraction.", "INPUT")
    folders = []
    for text in inputs:
        path = Path(text)
        if path.name == MANIFEST_NAME:
            path = path.parent
        folders.append(path)
    return folders


def create_tfrecords(config: CreateTFRecordsConfig, reporter: Reporter | None = None) -> dict[str, Any]:
    """Convert the patches folders of ``config`` to TFRecords; return the written folders and counts.

    Raises:
        InputError: no input, an input that is not a patches folder, two inputs with the
            same folder name, bad shard size, or an output folder that is not ours.
        DatasetError: an input folder is inconsistent.
    """
    from otbtf_qgis.core.data.patches import PatchesImagesReader
    from otbtf_qgis.core.data.tfrecords import TFRecords

    reporter = reporter or NullReporter()
    folders = _input_folders(config.inputs)
    descriptions = []
    for folder in folders:
        description = describe_dataset(folder, "INPUT")
        if description.kind != "patches":
            raise InputError(f"'{folder}' is already a TFRecords folder; give the output folder of Patches "
                             "extraction.", "INPUT")
        descriptions.append(description)
    names = [folder.resolve().name for folder in folders]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"several inputs are folders named {', '.join(duplicates)}; each becomes "
                         "OUTPUT_DIR/<folder name>, so names must differ (e.g. train, valid, test).", "INPUT")
    if config.n_samples_per_shard < 1:
        raise InputError(f"must be at least 1, got {config.n_samples_per_shard}.", "N_SAMPLES_PER_SHARD")
    output_dir = check_output_folder(config.output_dir, "OUTPUT_DIR")
    totals = np.array([d.n_samples or 0 for d in descriptions], np.float64)
    bounds = np.concatenate([[0.0], np.cumsum(totals) / totals.sum()])
    written: dict[str, dict[str, Any]] = {}
    with atomic_output(output_dir, "OUTPUT_DIR") as temp:
        temp.mkdir()
        for index, (folder, description) in enumerate(zip(folders, descriptions, strict=True)):
            target = temp if len(folders) == 1 else temp / names[index]
            sub = reporter.sub(float(bounds[index]), float(bounds[index + 1]))
            n_samples = description.n_samples or 0
            reader = PatchesImagesReader.from_files(
                description.files, use_streaming=description.sample_bytes * n_samples > IN_MEMORY_MAX_BYTES)
            order = (np.random.default_rng(config.seed).permutation(n_samples) if config.shuffle
                     else np.arange(n_samples))

            def samples(order: np.ndarray[Any, Any] = order,
                        reader: PatchesImagesReader = reader) -> Iterator[dict[str, Any]]:
                for sample_index in order:
                    yield reader.get_sample(int(sample_index))

            records = TFRecords(target)
            shards = records.write(samples(), n_samples, {k: list(v) for k, v in description.shapes.items()},
                                   dict(description.dtypes), config.n_samples_per_shard, config.drop_remainder, sub)
            count = sum(shard["n_samples"] for shard in shards)
            point_ids = (description.manifest or {}).get("point_ids")
            manifest = {
                **(description.manifest or {}),
                "format": TFRECORDS_FORMAT,
                "n_samples": count,
                "patches": os.path.abspath(folder),
                "shards": shards,
                "shuffled": config.shuffle,
                "seed": config.seed if config.shuffle else None,
            }
            if isinstance(point_ids, list) and len(point_ids) == n_samples:
                manifest["point_ids"] = [point_ids[int(i)] for i in order[:count]]
            write_json(target / MANIFEST_NAME, manifest)
            final = output_dir if len(folders) == 1 else output_dir / names[index]
            written[names[index]] = {"folder": str(final), "n_samples": count, "n_shards": len(shards),
                                     "dropped": n_samples - count}
            reporter.info(f"{folder}: {count} samples in {len(shards)} shards"
                          + (f" ({n_samples - count} dropped)" if n_samples > count else ""))
    reporter.progress(1.0)
    return {"output_dir": str(output_dir), "outputs": written}


def run(config: CreateTFRecordsConfig, reporter: Reporter) -> dict[str, Any]:
    """Worker entry point of ``createtfrecords``."""
    return create_tfrecords(config, reporter)
