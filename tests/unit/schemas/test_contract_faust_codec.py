"""The Faust codec: the same validating codec behind Faust's codec interface."""

from __future__ import annotations

import orjson
import pytest

from schemas import codec as codec_module
from schemas import models, registry
from schemas.errors import ContractError

faust_codecs = pytest.importorskip("faust.serializers.codecs")

ORDER = orjson.loads((registry.EXAMPLES_DIR / "valid/order/swap_pair.json").read_bytes())


def test_is_a_faust_codec_that_validates_both_ways() -> None:
    cls = codec_module.FaustJsonSchemaCodec
    assert issubclass(cls, faust_codecs.Codec)
    c = cls("order")
    data = c.dumps(ORDER)
    assert c.loads(data) == ORDER
    with pytest.raises(ContractError):
        c.dumps({**ORDER, "mode": "yolo"})
    with pytest.raises(ContractError) as caught:
        c.loads(b'{"schema_version": 1}')
    assert caught.value.path == "$.deadline_at"


def test_as_model_gives_typed_records() -> None:
    c = codec_module.FaustJsonSchemaCodec("order", as_model=True)
    record = c.loads(orjson.dumps(ORDER))
    assert isinstance(record, models.Order)
    assert record.swap_with is not None and record.swap_with.workload_id == "sim-bitbrains-0007"
    assert orjson.loads(c.dumps(record)) == ORDER


def test_registered_by_name_and_clone_keeps_arguments() -> None:
    made = codec_module.register_faust_codecs()
    assert set(made) == {f"plba-json-{t}" for t in registry.TYPE_NAMES}
    by_name = faust_codecs.get_codec("plba-json-order")
    assert by_name.loads(orjson.dumps(ORDER)) == ORDER
    clone = by_name.clone()
    assert clone.loads(orjson.dumps(ORDER)) == ORDER
    # Through Faust's module-level helpers, as Faust's serializer registry calls them.
    assert faust_codecs.loads("plba-json-order", faust_codecs.dumps("plba-json-order", ORDER)) == ORDER


def test_size_limit_is_passed_through() -> None:
    c = codec_module.FaustJsonSchemaCodec("order", max_bytes=100)
    with pytest.raises(ContractError) as caught:
        c.loads(orjson.dumps(ORDER))
    assert caught.value.code == "too_large"


def test_unknown_module_attribute() -> None:
    with pytest.raises(AttributeError):
        _ = codec_module.NoSuchThing
