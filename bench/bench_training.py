"""Training throughput: TFRecords vs patches-images, and the input pipeline alone vs training.

Data: 1024 samples of 64×64×4 uint16 images with uint8 label patches, written as a
patches folder and converted to TFRecords (the product's own job). For each kind of
folder the preprocessed pipeline that training uses (one-hot targets, weights) is timed
alone, and the training loop of the FCNN (MirroredStrategy, batch 16) consuming it.
Each figure is the median of 5 epochs after a warm-up epoch, the kinds alternating.
Then XLA: the same training step compiled whole with ``jit_compile`` against without.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

N_SAMPLES = 1024
PATCH = 64
BANDS = 4
BATCH = 16
EPOCHS = 5


def make_patches(folder: Path) -> Path:
    """The patches folder: random 12-bit-like images, labels 1 where band 1 is brighter than band 2."""
    from tests.core.training_data import write_patches_folder  # the repository root is on sys.path (run.py)

    rng = np.random.default_rng(0)
    images = rng.integers(0, 10000, (N_SAMPLES, PATCH, PATCH, BANDS)).astype(np.uint16)
    labels = (images[..., :1] > images[..., 1:2]).astype(np.uint8)
    return write_patches_folder(folder, images, labels, class_names=("a", "b"))


def _seconds(run_epoch: Any) -> float:
    start = time.perf_counter()
    run_epoch()
    return time.perf_counter() - start


def measure(folders: dict[str, Path], workdir: Path) -> dict[str, dict[str, float]]:
    """Samples/s of the pipeline alone and of training, per folder kind.

    One model serves both kinds; the epochs of the kinds alternate (after a warm-up
    epoch each) so that load changes on a shared machine hit both alike. Medians.
    """
    import tensorflow as tf

    from otbtf_qgis.core.jobs.configs.trainmodel import TrainModelConfig
    from otbtf_qgis.core.progress import NullReporter
    from otbtf_qgis.core.training.loop import DistributedSteps, make_optimizer
    from otbtf_qgis.core.training.pipeline import open_training_datasets, plan_training_data
    from otbtf_qgis.core.training.trainmodel import build_model, target_shape

    strategy = tf.distribute.MirroredStrategy()
    datasets, loop = {}, None
    for name, folder in folders.items():
        config = TrainModelConfig(str(folder), str(workdir / "unused"), batch_size=BATCH, seed=0)
        data = plan_training_data(config)
        if loop is None:
            with strategy.scope():
                model = build_model(config, data, NullReporter())
                target = target_shape(model, data)
                loop = DistributedSteps(model, make_optimizer(model, 1e-4), strategy)
        datasets[name] = open_training_datasets(config, data, target, NullReporter())["train"]
    assert loop is not None
    distributed = {name: strategy.experimental_distribute_dataset(d) for name, d in datasets.items()}

    def pipeline(name: str) -> Any:
        return lambda: [None for _ in datasets[name]]

    def training(name: str) -> Any:
        return lambda: loop.run_epoch(distributed[name], True, lambda index: None)

    times: dict[str, dict[str, list[float]]] = {name: {"pipeline": [], "training": []} for name in folders}
    for name in folders:
        pipeline(name)()
        training(name)()
    for _ in range(EPOCHS):
        for name in folders:
            times[name]["pipeline"].append(_seconds(pipeline(name)))
            times[name]["training"].append(_seconds(training(name)))
    samples = (N_SAMPLES // BATCH) * BATCH
    return {name: {kind: samples / statistics.median(values) for kind, values in kinds.items()}
            for name, kinds in times.items()}


def measure_xla(folder: Path, workdir: Path) -> dict[str, Any]:
    """Training samples/s of the FCNN step compiled whole by XLA (``jit_compile``) and not, and repeatability.

    XLA cannot compile a step that holds a distribution strategy's optimizer update, so
    both variants run under the default strategy (one device, no ``MirroredStrategy``).
    Repeatability: two seeded XLA runs of one epoch give the same weights, bit for bit.
    """
    import keras
    import tensorflow as tf

    from otbtf_qgis.core.jobs.configs.trainmodel import TrainModelConfig
    from otbtf_qgis.core.progress import NullReporter
    from otbtf_qgis.core.training.loop import DistributedSteps, make_optimizer
    from otbtf_qgis.core.training.pipeline import open_training_datasets, plan_training_data
    from otbtf_qgis.core.training.trainmodel import build_model, target_shape

    def fresh(jit: bool) -> tuple[DistributedSteps, Any]:
        keras.utils.set_random_seed(0)
        config = TrainModelConfig(str(folder), str(workdir / "unused"), batch_size=BATCH, seed=0)
        data = plan_training_data(config)
        model = build_model(config, data, NullReporter())
        loop = DistributedSteps(model, make_optimizer(model, 1e-4), tf.distribute.get_strategy())
        if jit:
            loop.train_step = tf.function(loop._train_step, jit_compile=True)
        return loop, open_training_datasets(config, data, target_shape(model, data), NullReporter())["train"]

    def weights(loop: DistributedSteps) -> Any:
        return np.concatenate([v.numpy().ravel() for v in loop.model.trainable_variables])

    loops = {jit: fresh(jit) for jit in (False, True)}
    times: dict[bool, list[float]] = {False: [], True: []}
    for loop, dataset in loops.values():
        loop.run_epoch(dataset, True, lambda index: None)
    for _ in range(EPOCHS):
        for jit, (loop, dataset) in loops.items():
            start = time.perf_counter()
            loop.run_epoch(dataset, True, lambda index: None)
            times[jit].append(time.perf_counter() - start)
    runs = []
    for _ in range(2):
        loop, dataset = fresh(True)
        loop.run_epoch(dataset, True, lambda index: None)
        runs.append(weights(loop))
    return {"speedup": statistics.median(times[False]) / statistics.median(times[True]),
            "repeatable": bool(np.array_equal(runs[0], runs[1]))}


def run(workdir: Path) -> str:
    from otbtf_qgis.core.data.createtfrecords import CreateTFRecordsConfig, create_tfrecords
    from otbtf_qgis.core.progress import NullReporter

    patches = make_patches(workdir / "patches")
    records = workdir / "records"
    create_tfrecords(CreateTFRecordsConfig(inputs=(str(patches),), output_dir=str(records), n_samples_per_shard=64),
                     NullReporter())
    results = measure({"patches-images": patches, "TFRecords": records}, workdir)
    lines = ["## Training throughput (FCNN, 64×64×4 uint16, batch 16, CPU)", "",
             "| Data | Input pipeline alone (samples/s) | Training (samples/s) | Pipeline / training |",
             "|---|---|---|---|"]
    for name, figures in results.items():
        lines.append(f"| {name} | {figures['pipeline']:.0f} | {figures['training']:.1f} | "
                     f"{figures['pipeline'] / figures['training']:.1f}× |")
    ratio = results["TFRecords"]["training"] / results["patches-images"]["training"]
    worst = min(r["pipeline"] / r["training"] for r in results.values())
    if abs(ratio - 1.0) < 0.1:
        reading = "the same speed as"
    else:
        reading = f"{ratio:.2f}× the speed of"
    lines += ["", f"Training from TFRecords runs at {reading} training from patches-images. Patches-images of this "
              "size are loaded in memory once and batches are gathered from it; TFRecords are read and "
              "deserialised every epoch by threads that share the CPU with training. The input pipeline alone "
              f"runs {worst:.1f}× faster than training consumes at worst (goal: at least 3×"
              f"{', met' if worst >= 3 else ', NOT met'})."]
    xla = measure_xla(patches, workdir)
    lines += ["", "## XLA (`jit_compile`) for training", "",
              f"The FCNN's training step compiled whole by XLA runs {xla['speedup']:.2f}× as fast as the same step "
              f"without (default strategy, patches-images above); two seeded XLA runs give "
              f"{'the same weights' if xla['repeatable'] else 'DIFFERENT weights'}. Not adopted: XLA cannot compile "
              "a step that holds `MirroredStrategy`'s optimizer update, which the training loop uses, and compiling "
              "only each replica's forward and backward pass was slower (0.8× in one run). On the demo's training "
              "(32-pixel patches, batch 16, augmentation with MIX), the whole step under XLA took 99 s against "
              "104 s (1.04×, one run): there the input pipeline, not the step, sets the pace."]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    with tempfile.TemporaryDirectory() as directory:
        print(run(Path(directory)))
