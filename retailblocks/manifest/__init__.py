"""The merchant's manifest (``blocks.yaml``): safe YAML loading with source positions, the
manifest's schema, block configuration and the JSON Schema editors use.

Every problem with a manifest is a :class:`ManifestError` whose message names the file, the line and
column, and the path inside the document::

    blocks.yaml:12:5: blocks[2].config.reservation_ttl: expected a duration like '15m' (got 'soon')
"""

from retailblocks.manifest.config import (
    SECRET_MASK,
    ConfigTypeError,
    build_config,
    config_fingerprint,
    config_to_public_dict,
    public_value,
)
from retailblocks.manifest.errors import ManifestError, Positioned, SourcePosition
from retailblocks.manifest.interpolate import interpolate
from retailblocks.manifest.jsonschema import config_json_schema, manifest_json_schema
from retailblocks.manifest.loader import load_manifest, parse_manifest
from retailblocks.manifest.model import (
    SUPPORTED_VERSION,
    BlockEntry,
    Campaign,
    Manifest,
    Partner,
    PartnerType,
    RefundPolicy,
    Routing,
    Segment,
)
from retailblocks.manifest.nodes import Node
from retailblocks.manifest.units import format_duration, parse_duration, parse_weight
from retailblocks.manifest.yamlsource import MAX_ALIAS_NODES, MAX_BYTES, MAX_DEPTH

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_BYTES",
    "MAX_DEPTH",
    "SECRET_MASK",
    "SUPPORTED_VERSION",
    "BlockEntry",
    "Campaign",
    "ConfigTypeError",
    "Manifest",
    "ManifestError",
    "Node",
    "Partner",
    "PartnerType",
    "Positioned",
    "RefundPolicy",
    "Routing",
    "Segment",
    "SourcePosition",
    "build_config",
    "config_fingerprint",
    "config_json_schema",
    "config_to_public_dict",
    "format_duration",
    "interpolate",
    "load_manifest",
    "manifest_json_schema",
    "parse_duration",
    "parse_manifest",
    "parse_weight",
    "public_value",
]
