"""Write uncompressed, striped, pixel-interleaved TIFFs by appending rows: the patches-images.

A patches-image (``docs/formats.md``) is written once, top to bottom, and never
compressed. Through GDAL, every row would be copied into the block cache (split into
one block per band), interleaved again and written when the cache is flushed: four
times the cost of writing the bytes. :class:`StripedTiffWriter` writes the rows
straight to the file instead: an 8-byte (16 for BigTIFF) header, the pixel data as
contiguous strips, then the image directory (IFD) at the end, whose offset is written
into the header last. The tags are those GDAL writes for the same raster (identity
geotransform, no CRS, ``MINISBLACK`` with extra samples), so GDAL, OTB and our readers
see the file as if GDAL had written it; except that GDAL would take 3 or 4 bands of
bytes for RGB(A), which patches are not.

Only real-valued pixel types are written this way (:func:`supports`); callers use
GDAL for the others.
"""

from __future__ import annotations

import contextlib
import os
import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from otbtf_qgis.core.errors import RasterIOError
from otbtf_qgis.core.jobs.outputs import PublishOnSuccess, ensure_writable_parent, partial_name

#: TIFF ``SampleFormat`` of each supported numpy kind: unsigned, signed, float.
_SAMPLE_FORMAT = {"u": 1, "i": 2, "f": 3}
#: Supported item sizes per numpy kind: the real-valued GDAL types (GDAL 3.6 has no signed byte).
_ITEM_SIZES = {"u": (1, 2, 4, 8), "i": (2, 4, 8), "f": (4, 8)}
#: Classic TIFF offsets are 32-bit: bigger files are written as BigTIFF.
CLASSIC_MAX_BYTES = (1 << 32) - 1

# TIFF field types: (code, struct format).
_SHORT = (3, "H")
_LONG = (4, "I")
_DOUBLE = (12, "d")
_LONG8 = (16, "Q")


def supports(dtype: Any) -> bool:
    """True when pixels of ``dtype`` can be written by :class:`StripedTiffWriter`."""
    dtype = np.dtype(dtype)
    return dtype.itemsize in _ITEM_SIZES.get(dtype.kind, ())


class StripedTiffWriter(PublishOnSuccess):
    """Append rows to a new uncompressed, striped, pixel-interleaved TIFF; publish it atomically.

    The file is written under a temporary name; :meth:`finalize` (or leaving a ``with``
    block normally) writes the directory and renames it to ``path``; :meth:`abort` (or an
    exception in the block) deletes it. The image gets as many rows as were appended, up
    to ``height``: the directory is written last, so the row count need not be known when
    writing starts (only BigTIFF is chosen for ``height`` rows).

    Args:
        path: Destination file.
        width: Columns.
        height: Most rows that may be appended.
        bands: Band count.
        dtype: numpy dtype of the pixels (see :func:`supports`).
        rows_per_strip: Rows of each strip (the last one may be shorter).
        bigtiff: Force BigTIFF (``True``) or classic TIFF (``False``); by default BigTIFF
            only when the file would not fit in 4 GiB.
        parameter: Parameter name used in error messages.

    Raises:
        ValueError: unsupported dtype or bad sizes.
        RasterIOError: the file cannot be created.
    """

    def __init__(self, path: str | os.PathLike[str], width: int, height: int, bands: int, dtype: Any,
                 rows_per_strip: int, bigtiff: bool | None = None, parameter: str = "OUTPUT") -> None:
        if not supports(dtype):
            raise ValueError(f"unsupported pixel type {np.dtype(dtype).name} for a striped TIFF")
        self.dtype = np.dtype(dtype).newbyteorder("<")  # the file says little-endian ("II")
        if min(width, height, bands, rows_per_strip) < 1 or width >= 1 << 32 or height >= 1 << 32:
            raise ValueError(f"bad TIFF size {width}x{height}x{bands} with {rows_per_strip} rows per strip")
        self.path = Path(path)
        self.parameter = parameter
        self.width, self.height, self.bands = width, height, bands
        self.rows_per_strip = min(rows_per_strip, height)
        self.row_bytes = width * bands * self.dtype.itemsize
        n_strips = -(-height // self.rows_per_strip)
        data_bytes = self.row_bytes * height
        directory_bytes = 512 + 6 * bands + 16 * n_strips  # bound of the IFD and its arrays
        self.bigtiff = bigtiff if bigtiff is not None else 16 + data_bytes + directory_bytes > CLASSIC_MAX_BYTES
        self.data_offset = 16 if self.bigtiff else 8
        self.rows_written = 0
        ensure_writable_parent(self.path, parameter)
        self.temp = partial_name(self.path)
        self.file: BinaryIO | None = None
        try:
            self.file = open(self.temp, "wb")  # closed by finalize or abort
            self.file.write(bytes(self.data_offset))  # the header, written last
        except OSError as exc:
            self.abort()
            raise RasterIOError(f"cannot create '{self.path}': {exc}. Check the folder and the free space.",
                                parameter) from exc

    def append(self, rows: npt.NDArray[Any]) -> None:
        """Write the next ``(n, width, bands)`` rows (converted to the writer's dtype if needed; ``n`` may be 0).

        Raises:
            ValueError: wrong shape, or more rows than the maximum height.
            RasterIOError: on an I/O failure (e.g. disk full).
        """
        if self.file is None:
            raise RasterIOError("the writer is closed", self.parameter)
        if rows.ndim != 3 or rows.shape[1:] != (self.width, self.bands):
            raise ValueError(f"rows of shape {rows.shape}, expected (n, {self.width}, {self.bands})")
        if self.rows_written + len(rows) > self.height:
            raise ValueError(f"{self.rows_written + len(rows)} rows written to an image of {self.height}")
        if len(rows) == 0:
            return
        data = np.ascontiguousarray(rows, dtype=self.dtype)
        try:
            self.file.write(data.data.cast("B"))
        except OSError as exc:
            self.abort()
            raise RasterIOError(f"writing '{self.path}' failed: {exc}. Check the free disk space.",
                                self.parameter) from exc
        self.rows_written += len(rows)

    def _directory(self, ifd_offset: int) -> bytes:
        """The IFD placed at ``ifd_offset``, followed by the values that do not fit in their entries."""
        n_strips = -(-self.height // self.rows_per_strip)
        strip_bytes = self.rows_per_strip * self.row_bytes
        offsets = [self.data_offset + k * strip_bytes for k in range(n_strips)]
        counts = [strip_bytes] * (n_strips - 1) + [(self.height - (n_strips - 1) * self.rows_per_strip)
                                                   * self.row_bytes]
        bits = self.dtype.itemsize * 8
        sample_format = _SAMPLE_FORMAT[self.dtype.kind]
        wide = _LONG8 if self.bigtiff else _LONG
        entries: list[tuple[int, tuple[int, str], list[Any]]] = [
            (256, _LONG, [self.width]),  # ImageWidth
            (257, _LONG, [self.height]),  # ImageLength
            (258, _SHORT, [bits] * self.bands),  # BitsPerSample
            (259, _SHORT, [1]),  # Compression: none
            (262, _SHORT, [1]),  # PhotometricInterpretation: MinIsBlack
            (273, wide, offsets),  # StripOffsets
            (277, _SHORT, [self.bands]),  # SamplesPerPixel
            (278, _LONG, [self.rows_per_strip]),  # RowsPerStrip
            (279, wide, counts),  # StripByteCounts
            (284, _SHORT, [1]),  # PlanarConfiguration: contiguous (pixel-interleaved)
        ]
        if self.bands > 1:
            entries.append((338, _SHORT, [0] * (self.bands - 1)))  # ExtraSamples: unspecified
        entries.append((339, _SHORT, [sample_format] * self.bands))  # SampleFormat
        # ModelTransformationTag of the identity geotransform (0, 1, 0, 0, 0, 1), as GDAL writes it.
        entries.append((34264, _DOUBLE, [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                                         0.0, 0.0, 0.0, 1.0]))
        # Classic TIFF: 2-byte entry count, 12-byte entries (4-byte value count and value); BigTIFF: 8, 20, 8.
        number_format, count_format, offset_format = ("Q", "Q", "Q") if self.bigtiff else ("H", "I", "I")
        inline = struct.calcsize("<" + offset_format)
        entry_size = struct.calcsize("<HH" + count_format) + inline
        directory_size = struct.calcsize("<" + number_format) + len(entries) * entry_size + inline
        head = [struct.pack("<" + number_format, len(entries))]
        extra: list[bytes] = []
        extra_offset = ifd_offset + directory_size
        for tag, (code, value_format), values in entries:
            payload = struct.pack(f"<{len(values)}{value_format}", *values)
            if len(payload) <= inline:
                field = payload.ljust(inline, b"\0")
            else:
                field = struct.pack("<" + offset_format, extra_offset)
                padded = payload + b"\0" * (len(payload) % 2)  # values start on word boundaries
                extra.append(padded)
                extra_offset += len(padded)
            head.append(struct.pack("<HH" + count_format, tag, code, len(values)) + field)
        head.append(struct.pack("<" + offset_format, 0))  # no next IFD
        return b"".join(head + extra)

    def finalize(self) -> Path:
        """Write the directory of the rows appended and the header, close and publish the file; return its path.

        Raises:
            RasterIOError: when no row was appended, or on an I/O failure.
        """
        if self.file is None:
            return self.path
        if self.rows_written == 0:
            self.abort()
            raise RasterIOError(f"'{self.path}' got no row: an image needs at least one.", self.parameter)
        self.height = self.rows_written  # the image ends at the last row appended
        self.rows_per_strip = min(self.rows_per_strip, self.height)
        try:
            ifd_offset = self.file.tell()
            if ifd_offset % 2:  # the IFD starts on a word boundary
                self.file.write(b"\0")
                ifd_offset += 1
            self.file.write(self._directory(ifd_offset))
            self.file.seek(0)
            if self.bigtiff:
                self.file.write(b"II" + struct.pack("<HHHQ", 43, 8, 0, ifd_offset))
            else:
                self.file.write(b"II" + struct.pack("<HI", 42, ifd_offset))
            self.file.close()
            self.file = None
            os.replace(self.temp, self.path)
        except OSError as exc:
            self.abort()
            raise RasterIOError(f"finishing '{self.path}' failed: {exc}. Check the free disk space.",
                                self.parameter) from exc
        return self.path

    def abort(self) -> None:
        """Close and delete the temporary file; nothing is published."""
        if self.file is not None:
            self.file.close()
            self.file = None
        with contextlib.suppress(FileNotFoundError):
            self.temp.unlink()

