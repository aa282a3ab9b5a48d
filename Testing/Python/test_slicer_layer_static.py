"""Static checks of what can only run inside desktop Slicer: CMake lists, effect files, layer boundaries."""
import ast
import os
import py_compile
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULES = ["SegmentAnythingMVA", "SmartBrush", "SmartPropagation"]
RESOURCE_EXTENSIONS = (".png", ".ui", ".txt", ".svg", ".json", ".mako", ".ini")
QT_MODULES = {"qt", "ctk", "PythonQt", "qSlicerSegmentationsEditorEffectsPythonQt", "SegmentEditorEffects"}


def module_files(module, extensions):
    folder = os.path.join(ROOT, module)
    found = []
    for directory, subfolders, files in os.walk(folder):
        subfolders[:] = [s for s in subfolders if s != "__pycache__"]
        found += [os.path.relpath(os.path.join(directory, f), folder).replace(os.sep, "/")
                  for f in files if f.endswith(extensions) and f != "CMakeLists.txt"]
    return sorted(found)


def cmake_list(module, variable):
    text = open(os.path.join(ROOT, module, "CMakeLists.txt")).read()
    match = re.search(r"set\(%s\s+(.*?)\)" % variable, text, re.S)
    assert match, f"{module}/CMakeLists.txt has no {variable}"
    return {line.strip() for line in match.group(1).split() if line.strip() and not line.startswith("$")}


def python_files(folder):
    for directory, subfolders, files in os.walk(folder):
        subfolders[:] = [s for s in subfolders if s not in ("__pycache__", ".venv", ".git", "node_modules")]
        for name in files:
            if name.endswith(".py"):
                yield os.path.join(directory, name)


def imported_modules(path):
    tree = ast.parse(open(path).read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((alias.name, 0) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield (node.module or "", node.level)


@pytest.mark.parametrize("module", MODULES)
def test_every_python_file_and_resource_is_listed_in_the_module_cmake(module):
    scripts = cmake_list(module, "MODULE_PYTHON_SCRIPTS")
    resources = cmake_list(module, "MODULE_PYTHON_RESOURCES")
    missing_scripts = sorted(set(module_files(module, (".py",))) - scripts)
    missing_resources = sorted(set(module_files(module, RESOURCE_EXTENSIONS)) - resources)
    assert not missing_scripts, f"{module}/CMakeLists.txt misses {missing_scripts}"
    assert not missing_resources, f"{module}/CMakeLists.txt misses {missing_resources}"
    for listed in scripts | resources:
        assert os.path.exists(os.path.join(ROOT, module, listed)), f"{module}/CMakeLists.txt lists missing {listed}"


def test_top_level_cmake_builds_every_module_and_declares_the_extension():
    text = open(os.path.join(ROOT, "CMakeLists.txt")).read()
    for module in MODULES:
        assert f"add_subdirectory({module})" in text
    for variable in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                     "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS", "EXTENSION_DEPENDS"):
        assert re.search(r"set\(%s " % variable, text), variable
    assert 'set(EXTENSION_DEPENDS "PyTorch")' in text
    assert "find_package(Slicer REQUIRED)" in text and "Slicer_EXTENSION_CPACK" in text
    for module in MODULES:
        module_text = open(os.path.join(ROOT, module, "CMakeLists.txt")).read()
        assert f"set(MODULE_NAME {module})" in module_text and "slicerMacroBuildScriptedModule" in module_text


def test_all_python_compiles():
    for path in python_files(ROOT):
        py_compile.compile(path, doraise=True)


def effect_files():
    """Each SegmentEditor*Lib's effect file: SegmentEditorEffect.py, or SegmentEditor<Tool>Effect.py for paint
    effects (the paint adaptor names the module after the file, so that name must be unique)."""
    for module in MODULES:
        for entry in sorted(os.listdir(os.path.join(ROOT, module))):
            if entry.startswith("SegmentEditor") and entry.endswith("Lib"):
                folder = os.path.join(ROOT, module, entry)
                yield next(os.path.join(folder, f) for f in sorted(os.listdir(folder))
                           if f.startswith("SegmentEditor") and f.endswith("Effect.py"))


def test_there_is_an_effect_for_each_smart_tool():
    names = {os.path.basename(os.path.dirname(path)) for path in effect_files()}
    assert names == {"SegmentEditorSegmentAnythingLib", "SegmentEditorSmartBrushLib",
                     "SegmentEditorSmartRegionsLib", "SegmentEditorSmartPropagationLib"}


@pytest.mark.parametrize("path", list(effect_files()), ids=lambda p: os.path.basename(os.path.dirname(p)))
def test_effect_file_defines_segment_editor_effect_with_absolute_imports_only(path):
    tree = ast.parse(open(path).read(), path)
    classes = [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
    base = os.path.splitext(os.path.basename(path))[0]
    assert base in classes  # the class the adaptors look for: the file's base name (ending in "Effect")
    relative = [module for module, level in imported_modules(path) if level > 0]
    assert not relative, f"relative imports fail when Slicer loads {path}: {relative}"
    assert os.path.exists(os.path.join(os.path.dirname(path), "SegmentEditorEffect.png"))


def lib_packages():
    for module in MODULES:
        for entry in sorted(os.listdir(os.path.join(ROOT, module))):
            if entry.endswith("Lib") and not entry.startswith("SegmentEditor") and entry != "MVASlicerLib":
                yield os.path.join(ROOT, module, entry)


@pytest.mark.parametrize("package", list(lib_packages()), ids=os.path.basename)
def test_lib_packages_import_no_qt(package):
    for path in python_files(package):
        for module, _ in imported_modules(path):
            assert module.split(".")[0] not in QT_MODULES, f"{path} imports {module}"
        source = open(path).read()
        assert "slicer.app" not in source and "slicer.util.mainWindow" not in source, path


def test_algorithm_packages_import_no_slicer_or_vtk():
    pure = [os.path.join(package, "algorithms") for package in lib_packages()]
    pure = [p for p in pure if os.path.isdir(p)]
    assert len(pure) >= 4
    for folder in pure:
        for path in python_files(folder):
            for module, _ in imported_modules(path):
                assert module.split(".")[0] not in {"slicer", "vtk", "qt", "ctk", "MVABridgeLib"}, \
                    f"{path} imports {module}"


def test_package_and_resource_names_are_unique_across_the_extension():
    packages, resources = {}, {}
    for module in MODULES:
        for entry in os.listdir(os.path.join(ROOT, module)):
            if os.path.isdir(os.path.join(ROOT, module, entry)) and entry not in ("Resources", "__pycache__"):
                assert entry not in packages, f"package {entry} in {module} and {packages.get(entry)}"
                packages[entry] = module
        for resource in module_files(module, RESOURCE_EXTENSIONS):
            if resource.startswith("Resources/"):
                assert resource not in resources, f"resource {resource} in {module} and {resources.get(resource)}"
                resources[resource] = module


def test_extension_index_entry_matches_the_cmake_metadata():
    import json
    entry = json.load(open(os.path.join(ROOT, "Resources", "ExtensionsIndex", "SegmentAnythingMVA.json")))
    assert {"$schema", "category", "scm_url"} <= set(entry)
    allowed = {"$schema", "build_dependencies", "build_subdirectory", "category", "enabled", "scm_revision",
               "scm_type", "scm_url", "tier"}
    assert set(entry) <= allowed  # the catalog schema forbids other properties
    text = open(os.path.join(ROOT, "CMakeLists.txt")).read()
    assert f'set(EXTENSION_CATEGORY "{entry["category"]}")' in text
    assert entry["build_dependencies"] == re.search(r'set\(EXTENSION_DEPENDS "([^"]*)"\)', text).group(1).split()
    for url in re.findall(r"set\(EXTENSION_(?:ICONURL|SCREENSHOTURLS) \"([^\"]+)\"\)", text):
        assert os.path.exists(os.path.join(ROOT, url.split("/main/", 1)[1])), url


LIGHT_TOP_LEVEL = {"qt", "ctk", "vtk", "slicer", "SegmentEditorEffects", "numpy", "os", "logging", "contextlib",
                   "traceback", "importlib", "MVASlicerLib", "SmartBrushLib.brush_options",
                   "SmartRegionsLib.regions_options", "SmartPropagationLib.propagation_options", "slicer.i18n",
                   "slicer.ScriptedLoadableModule", "vtk.util", "vtk.util.numpy_support", "unittest"}


def top_level_imports(path):
    tree = ast.parse(open(path).read(), path)
    for node in tree.body:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.module


def slicer_startup_files():
    yield from effect_files()
    for module in MODULES:
        yield os.path.join(ROOT, module, f"{module}.py")
    yield from python_files(os.path.join(ROOT, "SegmentAnythingMVA", "MVASlicerLib"))


@pytest.mark.parametrize("path", list(slicer_startup_files()), ids=lambda p: os.path.relpath(p, ROOT))
def test_files_slicer_loads_at_startup_import_nothing_that_may_be_missing(path):
    """scipy, scikit-image, torch... are installed on first use after the user agrees, so a fresh Slicer must be
    able to register the effects without them."""
    heavy = [name for name in top_level_imports(path)
             if name not in LIGHT_TOP_LEVEL and name.split(".")[0] not in ("MVASlicerLib", "importlib")]
    assert not heavy, f"{os.path.relpath(path, ROOT)} imports {heavy} at startup; import them where first used"


def test_option_defaults_match_the_algorithm_defaults():
    from SmartRegionsLib.algorithms.supervoxels import SupervoxelParameters
    from SmartRegionsLib.regions_options import RegionsOptions
    assert RegionsOptions().parameters() == SupervoxelParameters()


def registered_effect_names():
    """The `scriptedEffect.name` each effect file registers."""
    names = set()
    for path in effect_files():
        names.update(re.findall(r'scriptedEffect\.name = "([^"]+)"', open(path).read()))
    return names


def test_the_in_slicer_effect_test_activates_every_registered_effect_and_is_registered_with_ctest():
    test_file = os.path.join(ROOT, "Testing", "Python", "SmartEffectsInSlicerTest.py")
    tree = ast.parse(open(test_file).read())
    named = next(ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                 and getattr(node.targets[0], "id", "") == "EFFECT_NAMES")
    assert set(named) == registered_effect_names() and len(named) == 4
    source = open(test_file).read()
    for name in named:
        assert f'self.activate("{name}")' in source, f"the in-Slicer test never activates {name}"
    assert "setActiveEffectByName" in source
    testing_cmake = open(os.path.join(ROOT, "Testing", "CMakeLists.txt")).read()
    listed = re.search(r"set\(MVA_SLICER_TESTS(.*?)\)", testing_cmake, re.S).group(1).split()
    assert "SmartEffectsInSlicerTest.py" in listed and "slicer_add_python_unittest" in testing_cmake
