"""What a stack is made of, as data: printed by ``blocks assemble`` and written to the manifest's lock.

Nothing here may contain a secret: configurations appear as a fingerprint and with secrets masked. Nor
anything of one machine: the lock is committed and shared, so the database is shown as the manifest
wrote it, never as the absolute path it resolved to here.
"""

from __future__ import annotations

from typing import Any

from retailblocks.assembly.permissions import block_tables, tables_dict
from retailblocks.assembly.plan import Plan
from retailblocks.hookspecs import dispatch_of
from retailblocks.manifest import Manifest, config_fingerprint, config_to_public_dict
from retailblocks.manifest.model import mask_password
from retailblocks.version import CORE_API_VERSION, __version__

LOCK_FORMAT = 1


def describe_plan(plan: Plan) -> dict[str, Any]:

    manifest = plan.manifest
    routing = plan.hooks.routes
    return {
        "lock_format": LOCK_FORMAT,
        "core": {"distribution": "retailblocks", "version": __version__, "api": CORE_API_VERSION},
        "merchant": {
            "id": manifest.merchant.id,
            "name": manifest.merchant.name,
            "currency": manifest.merchant.currency,
        },
        "database": database_as_written(manifest),
        "channels": [{"id": c.id, "type": c.type.value, "location": c.location} for c in manifest.channels],
        "blocks": [
            {
                "id": block.entry.id,
                "use": block.entry.use,
                "distribution": block.info.distribution,
                "version": block.info.version,
                "core_api": block.instance.core_api,
                "capabilities": sorted(str(c) for c in block.instance.capabilities),
                "payment_methods": list(block.instance.payment_methods),
                "config": config_to_public_dict(block.instance.config),
                "config_fingerprint": config_fingerprint(block.instance.config),
                # Like an app's permissions: a new version that asks for more shows in the lock's diff.
                "permissions": tables_dict(block_tables(block.instance)),
            }
            for block in plan.blocks
        ],
        "routing": {
            "hooks": {
                hook: {"dispatch": dispatch_of(hook).value, "blocks": [block]}
                for hook, block in sorted(routing.providers.items())
            }
            | {
                hook: {"dispatch": dispatch_of(hook).value, "blocks": list(blocks)}
                for hook, blocks in sorted(routing.contributors.items())
            },
            "payment_methods": dict(sorted(routing.payment_methods.items())),
            "marketing": routing.marketing.describe(),
        },
    }


def database_as_written(manifest: Manifest) -> str:
    """The manifest's database URL as written in it, password masked; only the scheme when the URL comes
    from the environment (it differs between machines, and may hold a secret); the default when none is
    written, relative to the manifest as the default is."""
    root = manifest.source
    node = root.value.get("database") if root is not None and isinstance(root.value, dict) else None
    if node is None:
        return f"sqlite:///.blocks/{manifest.merchant.id}.db"
    if node.from_environment or not isinstance(node.value, str):
        scheme = manifest.database_url.split("://", 1)[0]
        return f"{scheme}://<from the environment>"
    return mask_password(node.value.strip())
