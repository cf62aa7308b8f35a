from __future__ import annotations

import pytest

from otbtf_qgis.core.errors import InputError
from otbtf_qgis.core.jobs.codec import config_from_dict, config_to_dict
from otbtf_qgis.core.jobs.configs.modelserve import (
    ServeConfig,
    SourceConfig,
    parse_user_placeholders,
    serve_config_from_text,
)


def test_sizes_of_the_text_parameters():
    config = serve_config_from_text(["a.tif", "b.tif"], "model", "out.tif", rfields="64; 32x16", efield="16x8")
    assert [source.receptive_field for source in config.sources] == [(64, 64), (32, 16)]
    assert config.expression_field == (16, 8)
    assert [s.receptive_field for s in serve_config_from_text(["a.tif", "b.tif"], "m", "o.tif", rfields="8").sources
            ] == [(8, 8), (8, 8)]
    with pytest.raises(InputError, match="'64,32' gives 2 value") as error:
        serve_config_from_text(["a.tif"], "model", "out.tif", rfields="64,32")
    assert error.value.parameter == "RFIELDS"
    for bad in ("64x32x2", "big", "-4"):
        with pytest.raises(InputError, match="is not a size") as error:
            serve_config_from_text(["a.tif"], "model", "out.tif", rfields=bad)
        assert error.value.parameter == "RFIELDS"
    with pytest.raises(InputError, match="at least 1") as error:
        serve_config_from_text(["a.tif"], "model", "out.tif", efield="0")
    assert error.value.parameter == "EFIELD"


def test_user_placeholders():
    assert parse_user_placeholders("dropout=0.0;is_training=false") == {"dropout": "0.0", "is_training": "false"}
    assert parse_user_placeholders(["a = 1"]) == {"a": "1"}
    with pytest.raises(InputError, match="'dropout' is not 'name=value'") as error:
        parse_user_placeholders("dropout")
    assert error.value.parameter == "USER_PLACEHOLDERS"


def test_config_roundtrip_and_validation():
    config = ServeConfig(sources=(SourceConfig(("a.tif", "b.tif"), (64,), "input_xs", 0.0),
                                  SourceConfig(("c.tif",), use_nodata=False)),
                         model="model", output="out.tif", expression_field=(32, 16), tile_size=512,
                         user_placeholders=("dropout=0.0",), output_type="uint8")
    data = config_to_dict(config)
    assert data["sources"][0] == {"paths": ["a.tif", "b.tif"], "receptive_field": [64], "placeholder": "input_xs",
                                  "nodata": 0.0, "use_nodata": True}
    assert config_from_dict(ServeConfig, data) == config
    assert config.sources[0].receptive_field_xy == (64, 64) and config.sources[1].receptive_field_xy is None
    assert config.expression_field_xy == (32, 16)
    for changes, parameter in (({"sources": []}, "SOURCES"), ({"model": ""}, "MODEL"), ({"output": ""}, "OUTPUT"),
                               ({"expression_field": [1, 2, 3]}, "EFIELD"), ({"spacing_scale": 0}, "SPCSCALE"),
                               ({"tile_size": -1}, "TILE_SIZE"), ({"output_type": "complex64"}, "OUTPUT_TYPE"),
                               ({"output_classes": "out.tif"}, "OUTPUT_CLASSES"),
                               ({"creation_options": ["LZW"]}, "CREATION_OPTIONS"),
                               ({"user_placeholders": ["x"]}, "USER_PLACEHOLDERS")):
        with pytest.raises(InputError) as error:
            config_from_dict(ServeConfig, {**data, **changes})
        assert error.value.parameter == parameter, changes
    with pytest.raises(InputError) as error:
        config_from_dict(ServeConfig, {**data, "sources": [{"paths": ["a.tif"], "receptive_field": [0]}]})
    assert error.value.parameter == "RFIELDS"


def test_config_from_processing_text():
    from otbtf_qgis.core.jobs.configs.modelserve import serve_config_from_text

    config = serve_config_from_text(["a.tif", "b.tif"], "model", "out.tif", rfields="64;32x16",
                                    placeholders="xs;", nodata="0;none", efield="32",
                                    output_names="p_crop16, p_crop32",
                                    user_placeholders="dropout=0.0;is_training=false",
                                    creation_options="COMPRESS=LZW; PREDICTOR=3", output_type="uint8")
    assert [s.receptive_field for s in config.sources] == [(64, 64), (32, 16)]
    assert [s.placeholder for s in config.sources] == ["xs", ""]
    assert [(s.nodata, s.use_nodata) for s in config.sources] == [(0.0, True), (None, False)]
    assert config.expression_field == (32, 32) and config.output_names == ("p_crop16", "p_crop32")
    assert config.user_placeholders == ("dropout=0.0", "is_training=false")
    assert config.creation_options == ("COMPRESS=LZW", "PREDICTOR=3")
    defaults = serve_config_from_text(["a.tif", "b.tif"], "model", "out.tif", rfields="64")
    assert [s.receptive_field for s in defaults.sources] == [(64, 64), (64, 64)]
    assert [s.use_nodata for s in defaults.sources] == [True, True] and defaults.expression_field == ()
    for kwargs, parameter in (({"rfields": "64;32;16"}, "RFIELDS"), ({"placeholders": "xs"}, "PLACEHOLDERS"),
                              ({"nodata": "zero"}, "NODATA"), ({"efield": "3x3x3"}, "EFIELD"),
                              ({"user_placeholders": "dropout"}, "USER_PLACEHOLDERS"),
                              ({"output_type": "int8"}, "OUTPUT_TYPE")):
        with pytest.raises(InputError) as error:
            serve_config_from_text(["a.tif", "b.tif"], "model", "out.tif", **kwargs)
        assert error.value.parameter == parameter, kwargs
    with pytest.raises(InputError) as error:
        serve_config_from_text([], "model", "out.tif")
    assert error.value.parameter == "SOURCES"
