"""The demo data the plan tests plan with: ids, manifests, secrets and the live state they are compared to."""

from __future__ import annotations

from reconciler.snapshot import BindingScope, LiveApi, LiveBinding, LiveGroup, LiveSignature, Snapshot

ORDERS = "0009db9c828549768a200320714b8930"
PAYMENTS = "5d1f3e0a7b8c4d2e9f6a1b3c5d7e9f01"


def api_id(n: int) -> str:
    return f"a{n:031x}"


# The manifest the plan tests plan against `demo_snapshot()`, and the secrets its ${env:...} read.
# One signature bound to one API: the smallest valid manifest, for tests that break it one field at a time.
ORDERS_MANIFEST = """\
region: cn-hangzhou
signatures:
  - name: orders_backend
    key: ordersKey01
    secret: ${env:ORDERS_SECRET}
bindings:
  - group: 0009db9c828549768a200320714b8930
    stage: RELEASE
    signature: orders_backend
    apis: [orders_list]
"""

DEMO_MANIFEST = f"""\
region: cn-hangzhou
ignore: [legacy_*]
signatures:
  - name: orders_backend
    key: ordersKey01
    secret: ${{env:ORDERS_SECRET}}
  - name: payments_backend
    key: paymentsNew
    secret: ${{env:PAYMENTS_SECRET}}
  - name: inventory_backend
    key: inventoryKey1
    secret: ${{env:INVENTORY_SECRET}}
bindings:
  - group: {ORDERS}
    stage: RELEASE
    signature: orders_backend
    apis: [orders_list, orders_get, orders_create]
"""
DEMO_SECRETS = {"ORDERS_SECRET": "ordersSecret01", "PAYMENTS_SECRET": "paymentsSecret02",
                "INVENTORY_SECRET": "inventorySecret1"}


def demo_snapshot() -> Snapshot:
    """Live state used by the plan tests: one of each kind of drift against tests' base manifest."""
    sigs = (
        LiveSignature(id="sig-orders", name="orders_backend", key="ordersKey01", secret="ordersSecret01"),
        LiveSignature(id="sig-pay", name="payments_backend", key="paymentsOld", secret="paymentsSecret01"),
        LiveSignature(id="sig-manual", name="manual_debug", key="manualKey01", secret="manualSecret01"),
        LiveSignature(id="sig-legacy", name="legacy_partner", key="legacyKey01", secret="legacySecret01"),
    )
    apis = tuple(LiveApi(id=api_id(i), name=name) for i, name in
                 enumerate(["orders_list", "orders_get", "orders_create", "orders_delete", "orders_export"], 1))
    bindings = (
        LiveBinding(group=ORDERS, stage="RELEASE", api_id=api_id(1), api_name="orders_list",
                    signature_id="sig-orders", signature_name="orders_backend"),
        LiveBinding(group=ORDERS, stage="RELEASE", api_id=api_id(2), api_name="orders_get",
                    signature_id="sig-pay", signature_name="payments_backend"),
        LiveBinding(group=ORDERS, stage="RELEASE", api_id=api_id(4), api_name="orders_delete",
                    signature_id="sig-orders", signature_name="orders_backend"),
        LiveBinding(group=ORDERS, stage="RELEASE", api_id=api_id(5), api_name="orders_export",
                    signature_id="sig-legacy", signature_name="legacy_partner"),
    )
    return Snapshot(region="cn-hangzhou", signatures=sigs, groups=(LiveGroup(id=ORDERS, name="orders", apis=apis),),
                    scopes=(BindingScope(group=ORDERS, stage="RELEASE"),), bindings=bindings)
