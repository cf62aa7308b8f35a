from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Literal

import pytest

from otbtf_qgis.core.errors import InputError
from otbtf_qgis.core.jobs.codec import add_config_arguments, config_from_args, config_from_dict, config_to_dict


@dataclass(frozen=True)
class Source:
    path: str
    receptive_field: tuple[int, int] = (64, 64)


@dataclass(frozen=True)
class Job:
    sources: tuple[Source, ...] = field(metadata={"param": "SOURCES"})
    tile_size: int = field(default=0, metadata={"param": "TILE_SIZE"})
    scale: float = 1.0
    names: tuple[str, ...] = ()
    mode: Literal["fast", "exact"] = "fast"
    nodata: float | None = None
    enabled: bool = True


def test_roundtrip_through_dict():
    job = Job(sources=(Source("a.tif", (32, 32)),), tile_size=256, names=("x", "y"), nodata=0.0)
    data = config_to_dict(job)
    assert data["sources"] == [{"path": "a.tif", "receptive_field": [32, 32]}]
    assert config_from_dict(Job, data) == job


def test_conversion_and_errors_name_the_parameter():
    job = config_from_dict(Job, {"sources": [{"path": "a"}], "tile_size": "128", "enabled": "no", "names": "a,b"})
    assert job.tile_size == 128 and job.enabled is False and job.names == ("a", "b")
    with pytest.raises(InputError, match="expected an integer") as bad:
        config_from_dict(Job, {"sources": [], "tile_size": "big"})
    assert bad.value.parameter == "TILE_SIZE"
    with pytest.raises(InputError, match="a value is required") as missing:
        config_from_dict(Job, {})
    assert missing.value.parameter == "SOURCES"
    with pytest.raises(InputError, match="unknown setting"):
        config_from_dict(Job, {"sources": [], "tiles": 3})
    with pytest.raises(InputError, match="not one of fast, exact"):
        config_from_dict(Job, {"sources": [], "mode": "slow"})
    with pytest.raises(InputError, match="expected 2 values") as nested:
        config_from_dict(Job, {"sources": [{"path": "a", "receptive_field": [1, 2, 3]}]})
    assert nested.value.parameter == "SOURCES[0].receptive_field"


def test_command_line_options():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, Job)
    args = parser.parse_args(["--sources", '{"path": "a.tif"}', "--tile-size", "512", "--names", "p", "q"])
    job = config_from_args(Job, args, base={"scale": 2})
    assert job == Job(sources=(Source("a.tif"),), tile_size=512, scale=2.0, names=("p", "q"))
