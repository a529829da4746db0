"""The deployment package: the app's files after `.funcignore`, and its dependencies for Azure.

infra/package_app.py stages it (azd's prepackage hook, the workflow, `make
package`): the files `.funcignore` leaves in, as Core Tools reads it (which
must agree with azd's gitignore reading, tests/infra_checks/package_files.py),
and requirements.txt installed as wheels for Flex Consumption's Linux x86-64
CPython 3.13 in `.python_packages/lib/site-packages`. `make package` downloads
them once (PyPI); these tests stage from that cache, offline, and import every
function with those wheels alone (this machine is Linux x86-64 CPython 3.13).
"""

from __future__ import annotations

import ast
import email.parser
import json
import shutil
import subprocess
import sys
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
from infra_support import INFRA, ROOT, run_script
from packaging.requirements import Requirement
from packaging.tags import compatible_tags, cpython_tags, parse_tag
from packaging.utils import canonicalize_name

RUNTIME_FILES = {"host.json", "requirements.txt"}
SITE_PACKAGES = Path(".python_packages") / "lib" / "site-packages"
# Flex Consumption: Linux x86-64, CPython 3.13; manylinux2014 is glibc 2.17, and
# a wheel for an older manylinux runs there too.
MANYLINUX = (["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
             + [f"manylinux_2_{minor}_x86_64" for minor in range(17, 4, -1)])
AZURE_TAGS = (set(cpython_tags((3, 13), abis=["cp313"], platforms=MANYLINUX))
              | set(compatible_tags((3, 13), "cp313", platforms=MANYLINUX)))
AZURE_MARKERS = {
    "python_version": "3.13", "python_full_version": "3.13.0", "implementation_name": "cpython",
    "platform_python_implementation": "CPython", "sys_platform": "linux", "os_name": "posix",
    "platform_system": "Linux", "platform_machine": "x86_64", "extra": "",
}


def function_folders() -> set[str]:
    return {path.parent.name for path in ROOT.glob("*/function.json")}


def requirements() -> list[Requirement]:
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text()
             .splitlines()]
    return [Requirement(line) for line in lines if line]


@cache
def package_files(root: Path = ROOT) -> dict[str, list[str]]:
    return run_script("package_files.py", str(root))


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> Path:
    """The package, staged as azd and the workflow deploy it, from the cached wheels."""
    dest = tmp_path_factory.mktemp("package") / "app"
    result = subprocess.run([sys.executable, str(INFRA / "package_app.py"), "--offline",
                             "--dest", str(dest)], capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, (
        f"{result.stderr}\nthe wheels are built by `make package` (`make test` runs it)")
    return dest


def _installed(site_packages: Path) -> dict[str, metadata.Distribution]:
    return {canonicalize_name(d.metadata["Name"]): d
            for d in metadata.distributions(path=[str(site_packages)])}


def test_core_tools_and_gitignore_matching_agree():
    listed = package_files()
    assert listed["gitignore"] == listed["core_tools"], (
        "`.funcignore` means different packages to azd and Core Tools: "
        f"{sorted(set(listed['gitignore']) ^ set(listed['core_tools']))}")


@pytest.mark.parametrize("matcher", ["gitignore", "core_tools"])
def test_package_holds_the_app_and_nothing_else(matcher):
    files = package_files()[matcher]
    top = {name.split("/", 1)[0] for name in files}
    expected = function_folders() | {"shared"} | RUNTIME_FILES
    assert {"make_call", "send_sms", "twiml"} <= function_folders()
    assert top == expected, (
        f"unexpected in the package: {sorted(top - expected)} (add them to .funcignore); "
        f"missing: {sorted(expected - top)}")
    for folder in function_folders():
        assert f"{folder}/function.json" in files and f"{folder}/__init__.py" in files
    assert not [f for f in files if "__pycache__" in f or f.endswith((".pyc", ".pyo"))]


def test_local_data_and_a_developers_own_packages_never_ship(tmp_path):
    """Azurite's data (messages, numbers) and a .python_packages built for the
    developer's machine stay out, for azd and Core Tools alike."""
    shutil.copy(ROOT / ".funcignore", tmp_path / ".funcignore")
    kept = ["host.json", "requirements.txt", "send_sms/__init__.py", "send_sms/function.json",
            "shared/settings.py"]
    left_out = [".azurite/__azurite_db_table__.json", ".azurite/legacy/data.json",
                ".python_packages/lib/site-packages/requests/__init__.py",
                "shared/__pycache__/settings.cpython-313.pyc", "devhost/host.py",
                "local.settings.json", ".venv/pyvenv.cfg", ".cache/package/app/host.json"]
    for name in kept + left_out:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    listed = run_script("package_files.py", str(tmp_path))
    assert listed["gitignore"] == listed["core_tools"] == sorted(kept)


def test_the_stager_keeps_exactly_what_core_tools_would():
    """infra/package_app.py skips left-out folders without walking them; same files."""
    sys.path.insert(0, str(INFRA))
    try:
        from package_app import app_files
    finally:
        sys.path.remove(str(INFRA))
    assert app_files(ROOT) == package_files()["core_tools"]


def test_the_staged_package_is_the_app_and_its_dependencies(staged):
    top = {path.name for path in staged.iterdir()}
    assert top == function_folders() | {"shared", ".python_packages"} | RUNTIME_FILES
    staged_files = sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*")
                          if p.is_file() and SITE_PACKAGES.as_posix() not in p.as_posix())
    assert staged_files == package_files()["core_tools"]
    assert not list(staged.rglob("__pycache__"))


def test_every_requirement_is_in_the_package_at_its_pin(staged):
    installed = _installed(staged / SITE_PACKAGES)
    for requirement in requirements():
        dist = installed.get(canonicalize_name(requirement.name))
        assert dist is not None, f"{requirement.name} is not in the package"
        assert requirement.specifier.contains(dist.version), (requirement, dist.version)
    for dist in installed.values():  # and what each needs on Azure
        for needed in dist.requires or []:
            need = Requirement(needed)
            if need.marker is None or need.marker.evaluate(AZURE_MARKERS):
                assert canonicalize_name(need.name) in installed, (
                    f"{dist.metadata['Name']} needs {need}, which is not in the package")


def test_every_wheel_is_built_for_linux_x86_64_cpython_313(staged):
    """cp313 (or abi3, or pure Python) wheels for manylinux x86-64: what Flex runs."""
    wheels = {}
    for wheel_file in (staged / SITE_PACKAGES).glob("*.dist-info/WHEEL"):
        fields = email.parser.Parser().parsestr(wheel_file.read_text())
        wheels[wheel_file.parent.name] = {tag for line in fields.get_all("Tag")
                                          for tag in parse_tag(line)}
    assert len(wheels) == len(_installed(staged / SITE_PACKAGES))
    wrong = {name: sorted(map(str, tags)) for name, tags in wheels.items()
             if not tags & AZURE_TAGS}
    assert not wrong, f"wheels Azure's CPython 3.13 on Linux x86-64 cannot load: {wrong}"
    compiled = {name for name, tags in wheels.items()
                if any(t.interpreter == "cp313" and t.platform != "any" for t in tags)}
    assert compiled, "no cp313 extension wheel at all: was the platform given to pip?"


def test_every_function_imports_with_the_packaged_wheels_alone(staged):
    """Unzipped on its own, every function imports from the package's own libraries:
    no repository beside it, no virtual environment (-I -S: no site-packages)."""
    site_packages = staged / SITE_PACKAGES
    script = (
        "import importlib, json, sys\n"
        f"sys.path[:0] = [{str(staged)!r}, {str(site_packages)!r}]\n"
        f"for name in {sorted(function_folders())!r}: importlib.import_module(name)\n"
        "import azure.functions, twilio, aiohttp, azure.data.tables\n"
        "print(json.dumps({'dev': sorted(n for n in sys.modules if n.split('.')[0] in "
        "('devhost', 'twilio_sandbox', 'push_sandbox', 'localhttp', 'loadtest', 'tests', "
        "'bench', 'harness')),"
        " 'from': sorted({m.__file__ for m in (azure.functions, twilio, aiohttp, "
        "azure.data.tables)})}))\n"
    )
    result = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True,
                            text=True, cwd=staged.parent, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dev"] == []
    assert all(path.startswith(str(site_packages)) for path in report["from"]), report["from"]


def _distributions_of(names: list[str]) -> set[str]:
    """The requirements and everything they depend on (installed metadata), normalised."""
    seen: set[str] = set()
    pending = list(names)
    while pending:
        name = canonicalize_name(pending.pop())
        if name in seen:
            continue
        seen.add(name)
        for dependency in metadata.requires(name) or []:
            requirement = Requirement(dependency)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return seen


def test_packaged_code_imports_only_what_requirements_txt_installs():
    """Azure has requirements.txt's packages and nothing else: a module from a dev
    dependency would import locally and fail on Azure."""
    allowed = _distributions_of([r.name for r in requirements()])
    providers = metadata.packages_distributions()
    local = function_folders() | {"shared"}
    missing = set()
    for name in package_files()["gitignore"]:
        if not name.endswith(".py"):
            continue
        tree = ast.parse((ROOT / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top in local or top == "__future__":
                    continue
                owners = {canonicalize_name(d) for d in providers.get(top, [])}
                if not owners & allowed:
                    missing.add((name, module))
    assert not missing, f"imported but not installed by requirements.txt: {sorted(missing)}"
