"""Flex Consumption's own rules: what Azure refuses or ignores on that plan, absent from infra/.

Other plans take these site properties and app settings; Flex Consumption
rejects some at deployment ("site configuration properties (...) for Flex
Consumption sites is invalid") and ignores others. Each row names its
Microsoft source: the app settings reference's "Flex Consumption plan
deprecations" table, or the Flex Consumption page's "Considerations" and
"Instance sizes".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from infra_support import ROOT, app_settings, bicep_trees, resource_body

DEPRECATIONS = ("https://learn.microsoft.com/azure/azure-functions/functions-app-settings"
                "#flex-consumption-plan-deprecations")
CONSIDERATIONS = ("https://learn.microsoft.com/azure/azure-functions/flex-consumption-plan"
                  "#considerations")
INSTANCE_SIZES = ("https://learn.microsoft.com/azure/azure-functions/flex-consumption-plan"
                  "#instance-sizes")

# (app setting, Microsoft's reason, source)
REFUSED_SETTINGS = [
    ("ENABLE_ORYX_BUILD", "replaced by the remoteBuild parameter when deploying", DEPRECATIONS),
    ("FUNCTIONS_EXTENSION_VERSION", "set by the backend", DEPRECATIONS),
    ("FUNCTIONS_WORKER_RUNTIME", "replaced by name in functionAppConfig.runtime", DEPRECATIONS),
    ("FUNCTIONS_WORKER_RUNTIME_VERSION", "replaced by version in functionAppConfig.runtime",
     DEPRECATIONS),
    ("FUNCTIONS_MAX_HTTP_CONCURRENCY", "replaced by scale and concurrency's trigger section",
     DEPRECATIONS),
    ("FUNCTIONS_WORKER_PROCESS_COUNT", "not valid", DEPRECATIONS),
    ("FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED", "not valid", DEPRECATIONS),
    ("SCM_DO_BUILD_DURING_DEPLOYMENT", "replaced by the remoteBuild parameter", DEPRECATIONS),
    ("WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "replaced by functionAppConfig's deployment "
     "section", DEPRECATIONS),
    ("WEBSITE_CONTENTOVERVNET", "not used for networking in Flex Consumption", DEPRECATIONS),
    ("WEBSITE_CONTENTSHARE", "replaced by functionAppConfig's deployment section", DEPRECATIONS),
    ("WEBSITE_DNS_SERVER", "DNS is inherited from the integrated virtual network", DEPRECATIONS),
    ("WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT", "replaced by maximumInstanceCount",
     DEPRECATIONS),
    ("WEBSITE_NODE_DEFAULT_VERSION", "replaced by version in functionAppConfig.runtime",
     DEPRECATIONS),
    ("WEBSITE_RUN_FROM_PACKAGE", "not used for deployments in Flex Consumption", DEPRECATIONS),
    ("WEBSITE_SKIP_CONTENTSHARE_VALIDATION", "content share isn't used", DEPRECATIONS),
    ("WEBSITE_VNET_ROUTE_ALL", "not used for networking in Flex Consumption", DEPRECATIONS),
    ("WEBSITE_TIME_ZONE", "time zones aren't supported", CONSIDERATIONS),
    ("TZ", "time zones aren't supported", CONSIDERATIONS),
    ("WEBSITE_LOAD_CERTIFICATES", "certificates aren't supported", CONSIDERATIONS),
]

# (site property, Microsoft's reason, source). The table writes them as
# `properties.<name>`; some live in `properties.siteConfig`, so a name is
# refused wherever it stands in the site's properties.
REFUSED_PROPERTIES = [
    ("alwaysOn", "not valid", DEPRECATIONS),
    ("containerSize", "renamed as instanceMemoryMB", DEPRECATIONS),
    ("ftpsState", "FTPS not supported", DEPRECATIONS),
    ("isReserved", "not valid", DEPRECATIONS),
    ("isXenon", "not valid", DEPRECATIONS),
    ("javaVersion", "replaced by version in functionAppConfig.runtime", DEPRECATIONS),
    ("linuxFxVersion", "replaced by functionAppConfig.runtime", DEPRECATIONS),
    ("netFrameworkVersion", "replaced by version in functionAppConfig.runtime", DEPRECATIONS),
    ("powerShellVersion", "replaced by version in functionAppConfig.runtime", DEPRECATIONS),
    ("functionAppScaleLimit", "renamed as maximumInstanceCount", DEPRECATIONS),
    ("preWarmedInstanceCount", "renamed as alwaysReadyInstances", DEPRECATIONS),
    ("use32BitWorkerProcess", "32-bit not supported", DEPRECATIONS),
    ("vnetBackupRestoreEnabled", "not used for networking in Flex Consumption", DEPRECATIONS),
    ("vnetContentShareEnabled", "not used for networking in Flex Consumption", DEPRECATIONS),
    ("vnetImagePullEnabled", "not used for networking in Flex Consumption", DEPRECATIONS),
    ("vnetRouteAllEnabled", "not used for networking in Flex Consumption", DEPRECATIONS),
    ("windowsFxVersion", "not valid", DEPRECATIONS),
    ("endToEndEncryptionEnabled", "certificate-based features aren't supported", CONSIDERATIONS),
]


def _sites() -> list[tuple[str, dict[str, Any]]]:
    """(symbol, body) of every function app infra/ creates (not `existing` ones)."""
    return [(symbol, resource_body(resource))
            for tree in bicep_trees().values()
            for symbol, resource in tree.get("resources", {}).items()
            if resource["type"] == "Microsoft.Web/sites" and not resource["existing"]]


def property_names(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(name, path) of every property key below ``node``, through objects and lists."""
    if isinstance(node, dict):
        for key, value in node.items():
            name = key.strip("'")
            yield name, f"{path}.{name}" if path else name
            yield from property_names(value, f"{path}.{name}" if path else name)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from property_names(item, f"{path}[{index}]")


def _site_properties() -> list[tuple[str, str]]:
    """Property names set on the sites, and on any `web` config resource (siteConfig's own)."""
    names = [(name, f"{symbol}.properties.{path}") for symbol, site in _sites()
             for name, path in property_names(site.get("properties", {}))]
    for tree in bicep_trees().values():
        for symbol, resource in tree.get("resources", {}).items():
            body = resource_body(resource)
            if resource["type"] == "Microsoft.Web/sites/config" and body.get("name") == "web":
                names += [(name, f"{symbol}.properties.{path}")
                          for name, path in property_names(body.get("properties", {}))]
    return names


def test_the_property_scan_sees_into_site_config():
    """A refused property nested in siteConfig is found where it stands."""
    site = {"serverFarmId": "plan.id", "siteConfig": {"ftpsState": "Disabled",
                                                      "appSettings": [{"alwaysOn": True}]}}
    assert ("ftpsState", "siteConfig.ftpsState") in property_names(site)
    assert ("alwaysOn", "siteConfig.appSettings[0].alwaysOn") in property_names(site)


@pytest.mark.parametrize("setting, reason, source", REFUSED_SETTINGS,
                         ids=[row[0] for row in REFUSED_SETTINGS])
def test_no_app_setting_flex_consumption_refuses(setting, reason, source):
    set_here = {name.lower() for name in app_settings()}
    assert setting.lower() not in set_here, f"{setting}: {reason} on Flex Consumption ({source})"


@pytest.mark.parametrize("name, reason, source", REFUSED_PROPERTIES,
                         ids=[row[0] for row in REFUSED_PROPERTIES])
def test_no_site_property_flex_consumption_refuses(name, reason, source):
    found = [path for found_name, path in _site_properties()
             if found_name.lower() == name.lower()]
    assert not found, f"{found}: {reason} on Flex Consumption ({source})"


def test_the_site_runs_on_a_flex_consumption_plan_of_its_own():
    """One app per Flex Consumption plan; Linux only; no deployment slots (Considerations)."""
    plans = [symbol for tree in bicep_trees().values()
             for symbol, resource in tree.get("resources", {}).items()
             if resource["type"] == "Microsoft.Web/serverfarms"
             and resource_body(resource).get("sku", {}).get("tier") == "FlexConsumption"]
    assert plans, "no Flex Consumption plan in infra/"
    for plan in plans:
        # serverFarmId is `<plan>.id`: pycep's tree of it names the plan's symbol.
        users = [symbol for symbol, site in _sites()
                 if f'"{plan}"' in json.dumps(site.get("properties", {}).get("serverFarmId"))]
        assert len(users) == 1, f"plan {plan} serves {users}: one app per plan ({CONSIDERATIONS})"
    slots = [r for tree in bicep_trees().values() for r in tree.get("resources", {}).values()
             if r["type"].startswith("Microsoft.Web/sites/slots")]
    assert not slots, f"deployment slots aren't supported ({CONSIDERATIONS})"


def test_scale_and_memory_are_within_what_flex_consumption_offers():
    """Maximum instances 40 to 1000 (Considerations, "Scale"); memory 512, 2048 or 4096 MB."""
    [(_, site)] = _sites()
    scale = site["properties"]["functionAppConfig"]["scaleAndConcurrency"]
    assert scale["instanceMemoryMB"] in (512, 2048, 4096), INSTANCE_SIZES
    main = bicep_trees()["infra/main.bicep"]["parameters"]["maximumInstanceCount"]
    bounds = {d["type"]: d["argument"] for d in main["decorators"]}
    assert 40 <= bounds["min_value"] <= main["default"] <= bounds["max_value"] <= 1000, (
        f"maximumInstanceCount must stay within 40..1000 ({CONSIDERATIONS})")
    app = bicep_trees()["infra/app/function-app.bicep"]
    assert scale["maximumInstanceCount"] == "maximumInstanceCount"
    assert app["parameters"]["maximumInstanceCount"]["type"] == "int"


def test_the_runtime_comes_from_function_app_config():
    [(_, site)] = _sites()
    config = site["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.13"}
    assert config["deployment"]["storage"]["type"] == "blobContainer"


def test_the_extension_bundle_is_one_flex_consumption_takes():
    """Non-C# apps need the extension bundle [4.0.0, 5.0.0) or later (Considerations)."""
    bundle = json.loads((ROOT / "host.json").read_text())["extensionBundle"]
    low = bundle["version"].strip("[(").split(",")[0].replace("*", "0")
    assert int(low.split(".")[0]) >= 4, f"{bundle['version']}: {CONSIDERATIONS}"


def test_blob_triggers_use_the_event_grid_source():
    """Flex Consumption runs blob triggers from Event Grid only (Considerations)."""
    for function_json in ROOT.glob("*/function.json"):
        for binding in json.loads(function_json.read_text())["bindings"]:
            if binding["type"] == "blobTrigger":
                assert binding.get("source") == "EventGrid", (function_json, CONSIDERATIONS)
