"""infra/ type-checks against Microsoft's Bicep type definitions, as the Bicep compiler would.

tests/infra_checks/typecheck.py is the checker (the Bicep CLI cannot be
installed here); tests/infra_checks/types/ holds the definitions it reads,
copied from Azure/bicep-types-az. The checker is itself tested on small
Bicep files, each holding one kind of mistake the compiler refuses.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from infra_support import SCRIPTS, bicep_files, bicep_trees, run_tool

TYPES = SCRIPTS / "types"


def _typecheck(*paths: Path) -> list[str]:
    result = run_tool("python", str(SCRIPTS / "typecheck.py"), *map(str, paths))
    return [finding["line"] for finding in json.loads(result.stdout)]


def test_every_resource_and_module_in_infra_type_checks():
    findings = _typecheck(*bicep_files())
    assert not findings, "\n".join(findings)


def test_the_type_definitions_copied_are_exactly_those_infra_uses():
    used = {(resource["type"].split("/", 1)[0].lower(), resource["api_version"])
            for tree in bicep_trees().values() for resource in tree.get("resources", {}).values()}
    copied = {(path.parent.parent.name, path.parent.name) for path in TYPES.glob("*/*/types.json")}
    assert used - copied == set(), f"copy these from Azure/bicep-types-az: {used - copied}"
    assert copied - used == set(), f"no resource uses these any more: {copied - used}"
    readme = (TYPES / "README.md").read_text()
    assert "1f896de2db966ad91e8f7d7d981e11d32e4f5d8d" in readme
    assert "MIT License" in (TYPES / "LICENSE").read_text()
    for provider, version in copied:
        assert f"`{provider}/{version}`" in readme, f"README.md's table lacks {provider}/{version}"


# Each case: a Bicep file and the finding lines the checker must print for it,
# no more and no fewer. Resource names are the symbolic names.
CASES = {
    "misspelled_key": ("""
resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: 'func-example'
  location: 'westeurope'
  properties: {
    httpsOnyl: true
  }
}
""", ["resource site (Microsoft.Web/sites@2024-04-01).properties.httpsOnyl: unknown property; "
      "did you mean 'httpsOnly'?"]),
    "read_only_property": ("""
resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: 'func-example'
  location: 'westeurope'
  properties: {
    defaultHostName: 'func-example.azurewebsites.net'
  }
}
""", ["resource site (Microsoft.Web/sites@2024-04-01).properties.defaultHostName: is read-only: "
      "Azure sets it, a deployment may not"]),
    "wrong_enum_value": ("""
resource auth 'Microsoft.Web/sites/config@2024-04-01' = {
  name: 'authsettingsV2'
  properties: {
    globalValidation: {
      unauthenticatedClientAction: 'Return402'
    }
  }
}
""", ["resource auth (Microsoft.Web/sites/config@2024-04-01).properties.globalValidation"
      ".unauthenticatedClientAction: 'Return402' is not one of 'AllowAnonymous', "
      "'RedirectToLoginPage', 'Return401', 'Return403'; did you mean 'Return403'?"]),
    "near_miss_of_an_open_enum": ("""
resource grant 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid('grant')
  properties: {
    roleDefinitionId: 'role'
    principalId: 'principal'
    principalType: 'ServicePrinciple'
  }
}
""", ["resource grant (Microsoft.Authorization/roleAssignments@2022-04-01).properties"
      ".principalType: 'ServicePrinciple' is not one of 'AgentServicePrincipal', 'AgentUser', "
      "'Device', 'ForeignGroup', 'Group', 'ServicePrincipal', 'User'; did you mean "
      "'ServicePrincipal'?"]),
    "required_property_missing": ("""
resource grant 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid('grant')
  properties: {
    principalId: 'principal'
  }
}
""", ["resource grant (Microsoft.Authorization/roleAssignments@2022-04-01).properties"
      ".roleDefinitionId: required property missing"]),
    "wrong_kind_in_an_array_item": ("""
resource auth 'Microsoft.Web/sites/config@2024-04-01' = {
  name: 'authsettingsV2'
  properties: {
    globalValidation: {
      excludedPaths: [
        '/api/twiml'
        42
      ]
    }
  }
}
""", ["resource auth (Microsoft.Web/sites/config@2024-04-01).properties.globalValidation"
      ".excludedPaths[1]: expects string, given int 42"]),
    "discriminated_object_variant": ("""
resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  name: 'appsetings'
  properties: {}
}
resource auth 'Microsoft.Web/sites/config@2024-04-01' = {
  name: 'authsettingsV2'
  properties: {
    requireAuthentication: true
  }
}
""", ["resource settings (Microsoft.Web/sites/config@2024-04-01).name: 'appsetings' is not one "
      "of 'appsettings', 'authsettings', 'authsettingsV2', 'azurestorageaccounts', 'backup', "
      "'connectionstrings', 'logs', 'metadata', 'pushsettings', 'slotConfigNames', 'web'; "
      "did you mean 'appsettings'?",
      "resource auth (Microsoft.Web/sites/config@2024-04-01).properties.requireAuthentication: "
      "unknown property"]),
    "through_a_variable_and_a_condition": ("""
param provider string
param strict bool
var providers = {
  google: {
    google: {
      enabled: true
      registration: {
        clientSecret: 'not-here'
      }
    }
  }
}
resource auth 'Microsoft.Web/sites/config@2024-04-01' = {
  name: 'authsettingsV2'
  properties: {
    identityProviders: providers[provider]
    globalValidation: strict ? {
      requireAuthentication: true
    } : {
      requireAuthentcation: false
    }
  }
}
""", ["resource auth (Microsoft.Web/sites/config@2024-04-01).properties.identityProviders.google"
      ".registration.clientSecret: unknown property",
      "resource auth (Microsoft.Web/sites/config@2024-04-01).properties.globalValidation"
      ".requireAuthentcation: unknown property; did you mean 'requireAuthentication'?"]),
    "a_parameter_value_an_enum_refuses": ("""
@allowed([
  'User'
  'Robot'
])
param kind string
resource grant 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid('grant')
  properties: {
    roleDefinitionId: 'role'
    principalId: 'principal'
    principalType: kind
  }
}
resource auth 'Microsoft.Web/sites/config@2024-04-01' = {
  name: 'authsettingsV2'
  properties: {
    globalValidation: {
      unauthenticatedClientAction: kind
    }
  }
}
""", ["resource auth (Microsoft.Web/sites/config@2024-04-01).properties.globalValidation"
      ".unauthenticatedClientAction: 'User' (a parameter's allowed value or default) is not one "
      "of 'AllowAnonymous', 'RedirectToLoginPage', 'Return401', 'Return403'",
      "resource auth (Microsoft.Web/sites/config@2024-04-01).properties.globalValidation"
      ".unauthenticatedClientAction: 'Robot' (a parameter's allowed value or default) is not one "
      "of 'AllowAnonymous', 'RedirectToLoginPage', 'Return401', 'Return403'"]),
    "a_merged_fragment_needs_no_required_property": ("""
param extra object
resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  name: 'appsettings'
  properties: union({
    ONE: 'x'
  }, extra, {
    TWO: 2
  })
}
""", ["resource settings (Microsoft.Web/sites/config@2024-04-01).properties.TWO: expects "
      "string, given int 2"]),
    "in_a_loop_and_a_condition": ("""
param ids array
resource g 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (n, i) in ids: if (i > 0) {
  name: guid(n)
  properties: {
    roleDefinitionId: 'role'
    principalId: n
    principalTyp: 'User'
  }
}]
""", ["resource g (Microsoft.Authorization/roleAssignments@2022-04-01).properties"
      ".principalTyp: unknown property; did you mean 'principalType'?"]),
    "unknown_type_or_api_version": ("""
resource site 'Microsoft.Web/sites@2099-01-01' = {
  name: 'func-example'
}
""", ["resource site (Microsoft.Web/sites@2099-01-01): no type definitions for "
      "Microsoft.Web/sites@2099-01-01 in tests/infra_checks/types (copy them from "
      "Azure/bicep-types-az, see its README)"]),
    "module_parameters": ("""
module app 'called.bicep' = {
  name: 'app'
  params: {
    nmae: 'x'
    count: 'three'
    provider: 'apple'
  }
}
""", ["module app (called.bicep).params.nmae: not a parameter of called.bicep; did you mean "
      "'name'?",
      "module app (called.bicep).params.name: required parameter not given",
      "module app (called.bicep).params.count: expects int, given string",
      "module app (called.bicep).params.provider: 'apple' is not one of its @allowed values "
      "['google', 'azureActiveDirectory']"]),
    "a_clean_file": ("""
param location string
resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan'
  location: location
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}
""", []),
}
CALLED = """
param name string
param count int = 1
@allowed([
  'google'
  'azureActiveDirectory'
])
param provider string = 'google'
"""


@pytest.fixture(scope="module")
def checked(tmp_path_factory) -> dict[str, list[str]]:
    """Every case checked in one run of the checker: finding lines by case."""
    folder = tmp_path_factory.mktemp("bicep")
    (folder / "called.bicep").write_text(CALLED)
    paths = []
    for name, (text, _) in CASES.items():
        paths.append(folder / f"{name}.bicep")
        paths[-1].write_text(text.lstrip())
    lines = _typecheck(*paths)
    return {name: sorted(line.split(": ", 1)[1] for line in lines
                         if line.startswith(str(folder / f"{name}.bicep") + ": "))
            for name in CASES}


@pytest.mark.parametrize("case", CASES)
def test_the_checker_finds_what_the_bicep_compiler_refuses(checked, case):
    assert checked[case] == sorted(CASES[case][1])


def test_a_finding_names_file_resource_and_property_path(tmp_path):
    bicep = tmp_path / "one.bicep"
    bicep.write_text(CASES["misspelled_key"][0])
    result = run_tool("python", str(SCRIPTS / "typecheck.py"), str(bicep))
    [finding] = json.loads(result.stdout)
    assert finding["file"] == str(bicep)
    assert finding["resource"] == "resource site (Microsoft.Web/sites@2024-04-01)"
    assert finding["path"] == "properties.httpsOnyl"
    assert finding["line"] == f"{bicep}: {finding['resource']}.properties.httpsOnyl: " \
        "unknown property; did you mean 'httpsOnly'?"


def test_an_unparsable_file_is_a_finding_not_a_crash(tmp_path):
    broken = tmp_path / "broken.bicep"
    broken.write_text("resource x 'Microsoft.Web/sites@2024-04-01' = {\n  name: \n")
    [line] = _typecheck(broken)
    assert line.startswith(f"{broken}: file: cannot parse: ")
