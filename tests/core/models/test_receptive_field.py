"""Padding-free geometry (pure functions), checked exhaustively against a NaN-propagation brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from otbtf_qgis.core.errors import InputError
from otbtf_qgis.core.models.receptive_field import (
    OutputGeometry,
    ReceptiveFieldReport,
    conv_valid_mask,
    crop_covers,
    cropped_outputs,
    input_sizes_for,
    recommend,
    same_padding_before,
    split_crop_name,
    transposed_conv_valid_mask,
    valid_run,
)
from otbtf_qgis.core.models.report import report_html, report_markdown


def conv_output_size(in_size: int, kernel: int, stride: int, padding: str, dilation: int = 1) -> int:
    """TensorFlow's output size of a convolution: ``⌈n/s⌉`` ("same"), ``⌊(n − d·(k−1) − 1)/s⌋ + 1`` ("valid")."""
    if padding.upper() == "SAME":
        return -(-in_size // stride)
    return max((in_size - dilation * (kernel - 1) - 1) // stride + 1, 0)


def brute_conv(mask: np.ndarray, kernel: int, stride: int, pad_before: int, out_size: int, dilation: int) -> np.ndarray:
    """Convolve a signal that is NaN where invalid, zero-padded outside: NaN or padding-reached outputs are invalid."""
    n = len(mask)
    values = np.where(mask, 1.0, np.nan)
    touched_padding = np.zeros(out_size, bool)
    out = np.zeros(out_size)
    for j in range(out_size):
        for t in range(kernel):
            i = j * stride - pad_before + t * dilation
            if 0 <= i < n:
                out[j] += values[i]
            else:
                touched_padding[j] = True
    return ~np.isnan(out) & ~touched_padding


def brute_transposed(mask: np.ndarray, kernel: int, stride: int, pad_before: int, out_size: int,
                     dilation: int) -> np.ndarray:
    """Scatter an input extended with NaN on both sides (the pixels a bigger image would have)."""
    n = len(mask)
    margin = kernel * dilation + stride
    extended = np.concatenate([np.full(margin, np.nan), np.where(mask, 1.0, np.nan), np.full(margin, np.nan)])
    out = np.zeros(out_size)
    for index, value in enumerate(extended):
        j = index - margin
        for t in range(kernel):
            i = j * stride - pad_before + t * dilation
            if 0 <= i < out_size:
                out[i] += value
    del n
    return ~np.isnan(out)


LAYERS = list(itertools.product((1, 2, 3, 5), (1, 2, 3), ("SAME", "VALID")))


@pytest.mark.parametrize(("kernel", "stride", "padding"), LAYERS)
def test_conv_mask_matches_brute_force(kernel, stride, padding):
    rng = np.random.default_rng(kernel * 100 + stride * 10)
    for n, dilation in itertools.product(range(1, 14), (1, 2)):
        out_size = conv_output_size(n, kernel, stride, padding, dilation)
        pad = same_padding_before(n, out_size, kernel, stride, dilation) if padding == "SAME" else 0
        for mask in (np.ones(n, bool), rng.random(n) > 0.3):
            expected = brute_conv(mask, kernel, stride, pad, out_size, dilation)
            np.testing.assert_array_equal(conv_valid_mask(mask, kernel, stride, pad, out_size, dilation), expected,
                                          err_msg=f"n={n} dilation={dilation} mask={mask}")


@pytest.mark.parametrize(("kernel", "stride", "padding"), LAYERS)
def test_transposed_conv_mask_matches_brute_force(kernel, stride, padding):
    rng = np.random.default_rng(kernel * 100 + stride * 10 + 7)
    for n, dilation in itertools.product(range(1, 14), (1, 2)):
        # A transposed convolution from n to out_size pixels is the gradient of a convolution from out_size to n.
        out_size = n * stride if padding == "SAME" else (n - 1) * stride + dilation * (kernel - 1) + 1
        pad = same_padding_before(out_size, n, kernel, stride, dilation) if padding == "SAME" else 0
        for mask in (np.ones(n, bool), rng.random(n) > 0.3):
            expected = brute_transposed(mask, kernel, stride, pad, out_size, dilation)
            np.testing.assert_array_equal(transposed_conv_valid_mask(mask, kernel, stride, pad, out_size, dilation),
                                          expected, err_msg=f"n={n} dilation={dilation} mask={mask}")


def test_otbtf_formulas_for_3x3_stride_2():
    """OTBTF's docs (even sizes): conv y = ⌊(x − k)/s⌋ + 1, transposed conv y = x·s − k + 2 (k = 3, s = 2)."""
    for x in range(8, 80, 2):
        out = conv_output_size(x, 3, 2, "SAME")
        mask = conv_valid_mask(np.ones(x, bool), 3, 2, same_padding_before(x, out, 3, 2), out)
        assert int(mask.sum()) == (x - 3) // 2 + 1, x
        up = transposed_conv_valid_mask(np.ones(x, bool), 3, 2, same_padding_before(2 * x, x, 3, 2), 2 * x)
        assert int(up.sum()) == x * 2 - 3 + 2, x


def test_fcnn_chain_of_the_documentation():
    """64 → 31 → 15 → 7 → 3, then 5 → 9 → 17 → 33 with the skip connections: crop16, rf 64, ef 32.

    The same chain from a real FCNN's graph: test_model_graph.test_fcnn_gives_the_documentation_table.
    """
    sizes, masks = [64], [np.ones(64, bool)]
    for _ in range(4):
        n = sizes[-1]
        out = conv_output_size(n, 3, 2, "SAME")
        masks.append(conv_valid_mask(masks[-1], 3, 2, same_padding_before(n, out, 3, 2), out))
        sizes.append(out)
    assert [int(m.sum()) for m in masks] == [64, 31, 15, 7, 3]
    current = masks[-1]
    valid_sizes = []
    for skip in (masks[3], masks[2], masks[1], None):
        n = len(current)
        current = transposed_conv_valid_mask(current, 3, 2, same_padding_before(2 * n, n, 3, 2), 2 * n)
        valid_sizes.append(int(current.sum()))
        if skip is not None:
            current = current & skip
    assert valid_sizes == [5, 9, 17, 33]
    run = valid_run(current)
    assert run == (15, 48)
    outputs = {"p": OutputGeometry("p", (64, 64), run, run)}
    for crop in (16, 32, 64, 96, 128):
        inner = max(64 - 2 * crop, 0)
        outputs[f"p_crop{crop}"] = OutputGeometry(f"p_crop{crop}", (inner, inner), (0, inner), (0, inner))
    report = ReceptiveFieldReport({"input_xs": (64, 64)}, "analytic", outputs)
    recommend(report, "p")
    assert (report.recommended_output, report.receptive_field, report.expression_field) == ("p_crop16", (64, 64),
                                                                                            (32, 32))


def test_valid_run_and_crop_helpers():
    assert valid_run(np.array([0, 1, 1, 0, 1, 1, 1, 0], bool)) == (4, 7)
    assert valid_run(np.zeros(5, bool)) == (0, 0)
    assert valid_run(np.ones(3, bool)) == (0, 3)
    assert crop_covers((15, 48), 64, 16)
    assert not crop_covers((15, 48), 64, 15)
    assert not crop_covers((0, 64), 64, 32)  # nothing left
    assert split_crop_name("predictions_softmax_tensor_crop16") == ("predictions_softmax_tensor", 16)
    assert split_crop_name("predictions") is None


def test_cropped_outputs_need_their_base_output():
    names = ["p", "p_crop16", "p_crop32", "q_crop16", "features"]
    assert cropped_outputs(names) == {"p_crop16": ("p", 16), "p_crop32": ("p", 32)}
    assert cropped_outputs({"a_crop1": 0}) == {}


def _report(size: int, valid: tuple[int, int], crops: tuple[int, ...]) -> ReceptiveFieldReport:
    outputs = {"pred": OutputGeometry("pred", (size, size), valid, valid)}
    for crop in crops:
        inner = max(size - 2 * crop, 0)
        outputs[f"pred_crop{crop}"] = OutputGeometry(f"pred_crop{crop}", (inner, inner), (0, inner), (0, inner))
    return ReceptiveFieldReport({"input_xs": (size, size)}, "analytic", outputs)


def test_recommend_smallest_seamless_crop():
    report = _report(128, (15, 112), (16, 32, 64))
    recommend(report, "pred")
    assert (report.recommended_output, report.receptive_field, report.expression_field) == ("pred_crop16", (128, 128),
                                                                                            (96, 96))


def test_recommend_largest_fitting_crop_when_none_is_seamless():
    report = _report(64, (20, 44), (16, 32))
    recommend(report, "pred")
    assert (report.recommended_output, report.expression_field) == ("pred_crop16", (32, 32))
    assert "larger input size" in report.notes[-1]


def test_recommend_the_whole_output_when_it_is_padding_free_or_no_crop_fits():
    clean = _report(32, (0, 32), (8,))
    recommend(clean, "pred")
    assert (clean.recommended_output, clean.receptive_field, clean.expression_field) == ("pred", (32, 32), (32, 32))
    assert "no crop is needed" in clean.notes[-1]
    small = _report(16, (4, 12), (8, 16))  # both crops leave no pixel of 16
    recommend(small, "pred")
    assert (small.recommended_output, small.expression_field) == ("pred", (16, 16))
    assert "fits an input of 16×16" in small.notes[-1]


def test_recommend_without_cropped_outputs_or_spatial_outputs():
    report = ReceptiveFieldReport({"x": (32, 32)}, "analytic", {"y": OutputGeometry("y", (32, 32), (4, 28), (4, 28))})
    recommend(report)
    assert (report.recommended_output, report.expression_field) == ("y", (32, 32))
    assert "no cropped outputs" in report.notes[-1]
    flat = ReceptiveFieldReport({"x": (16, 16)}, "analytic", {"y": OutputGeometry("y", None)})
    recommend(flat)
    assert (flat.recommended_output, flat.receptive_field, flat.expression_field) == ("y", (16, 16), (1, 1))


def test_report_tables():
    report = _report(64, (15, 48), (16, 32))
    recommend(report, "pred")
    text = report_markdown(report)
    assert "| pred_crop16 | 16 | 32 | 32 | 64 | 32 | yes |" in text
    assert "| pred_crop32 | 32 | 0 | 0 | 64 | none | no |" in text
    assert "| pred | 0 | 64 | 33 | 64 | 64 | no |" in text
    assert "Recommended: OUTPUT_NAME=pred_crop16, RFIELD=64, EFIELD=32." in text
    assert text.startswith("Input size: input_xs 64 (method: analytic).")
    page = report_html(report)
    assert "<td>pred_crop16</td>" in page
    assert "<p>Input size: input_xs 64 (method: analytic).</p>" in page
    assert "<p><b>Recommended</b>: OUTPUT_NAME=pred_crop16, RFIELD=64, EFIELD=32.</p>" in page
    assert report.to_dict()["outputs"]["pred"]["valid_size"] == [33, 33]


def test_input_sizes_scale_with_training_patches():
    described = {"input_p": {"patch_size": [64, 64]}, "input_xs": {"patch_size": [16, 16]}}
    assert input_sizes_for(128, ["input_p", "input_xs"], described) == {"input_p": (128, 128), "input_xs": (32, 32)}
    assert input_sizes_for(50, ["a", "b"], {}) == {"a": (50, 50), "b": (50, 50)}
    # Non-square patches ([x, y]): the first input stays square, the others keep their ratio per axis (rows, cols).
    described = {"input_a": {"patch_size": [64, 32]}, "input_b": {"patch_size": [32, 8]}}
    assert input_sizes_for(128, ["input_a", "input_b"], described) == {"input_a": (128, 128), "input_b": (32, 64)}
    assert input_sizes_for(128, ["input_b", "input_a"], described) == {"input_b": (128, 128), "input_a": (512, 256)}
    with pytest.raises(InputError, match="INPUT_SIZE"):
        input_sizes_for(0, ["a"], {})
