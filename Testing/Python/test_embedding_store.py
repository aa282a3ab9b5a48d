"""Embedding store and `mva embed` in this process (workers=0): resume, invalidation, corruption, cancel, and
the logic using stored embeddings exactly like fresh ones."""
import threading

import numpy as np
import pytest
from conftest import add_segmentation

from MVABridgeLib.editor_session import SegmentEditorSession
from MVABridgeLib.segments import segment_mask_in_volume
from MVABridgeLib.volume_io import read_volume, write_volume
from MVAComputeLib.embed_cases import cases_from_path, cases_from_project
from MVAComputeLib.embed_job import EmbedSettings, run_embed, stored_slices
from MVAComputeLib.operations import engine_for_spec
from SegmentAnythingLib.algorithms.sam_embedding_store import EmbeddingStore, volume_digest
from SegmentAnythingLib.segment_anything_logic import SegmentAnythingLogic

MATRIX = np.array([[-0.9, 0, 0, 10.0], [0, -0.8, 0, -5.0], [0, 0, 2.0, 3.0], [0, 0, 0, 1]])
INLINE = EmbedSettings(workers=0, axes=("axial", "coronal"))


def a_volume(seed, shape=(5, 24, 20)):
    k, j, i = np.mgrid[:shape[0], :shape[1], :shape[2]]
    disc = ((j - 12) ** 2 + (i - 10) ** 2 < 30) * 300
    return (disc + np.random.default_rng(seed).integers(0, 60, shape)).astype(np.int16)


@pytest.fixture
def a_case_folder(tmp_path):
    folder = tmp_path / "cases"
    folder.mkdir()
    for seed, name in ((1, "alpha"), (2, "beta")):
        write_volume(str(folder / f"{name}.nrrd"), a_volume(seed), MATRIX)
    return folder


def all_records(store_path):
    store = EmbeddingStore(store_path)
    return {(digest, axis, index): store.case(digest).axis(axis).read(index).tobytes()
            for digest, axes in stored_slices(store_path).items() for axis in axes
            for index in store.case(digest).axis(axis).present()}


def test_a_folder_is_embedded_once_and_a_second_run_does_nothing(a_case_folder, tmp_path):
    store_path = tmp_path / "store.zarr"
    cases = cases_from_path(a_case_folder)
    first = run_embed(cases, store_path, INLINE)
    assert first.slices_total == first.slices_computed == 2 * (5 + 24) and first.slices_skipped == 0
    assert sorted(stored_slices(store_path).values(), key=str) == [{"k": 5, "j": 24}] * 2
    records = all_records(store_path)
    second = run_embed(cases, store_path, INLINE)
    assert second.slices_computed == 0 and second.slices_skipped == first.slices_total
    assert all_records(store_path) == records
    assert "58 embedded" in first.text() and "58 already stored" in second.text()


def test_an_interrupted_run_resumes_and_a_corrupt_record_is_recomputed(a_case_folder, tmp_path):
    store_path = tmp_path / "store.zarr"
    cases = cases_from_path(a_case_folder)
    stop = threading.Event()
    cancelled = run_embed(cases, store_path, INLINE, progress=lambda done, total: done >= 7 and stop.set(),
                          cancel=stop)
    assert cancelled.cancelled and cancelled.slices_computed == 7 and "resume" in cancelled.text()
    partial = all_records(store_path)
    assert len(partial) == 7  # every written record verifies
    resumed = run_embed(cases, store_path, INLINE)
    assert resumed.slices_computed == 58 - 7 and not resumed.cancelled
    complete = all_records(store_path)
    assert all(complete[key] == value for key, value in partial.items())

    digest = sorted(stored_slices(store_path))[0]
    axis = EmbeddingStore(store_path, "a").case(digest).axis("k")
    damaged = np.asarray(axis.embeddings[2]).copy()
    damaged.flat[0] += 1
    axis.embeddings[2] = damaged  # bytes changed behind the checksum's back
    with pytest.raises(Exception, match="corrupt"):
        EmbeddingStore(store_path).case(digest).axis("k").read(2)
    repaired = run_embed(cases, store_path, INLINE)
    assert repaired.slices_computed == 1 and any("1 corrupt" in message for message in repaired.messages)
    assert all_records(store_path) == complete


def test_a_changed_window_or_model_invalidates_the_case(a_case_folder, tmp_path):
    store_path = tmp_path / "store.zarr"
    cases = cases_from_path(a_case_folder)[:1]
    run_embed(cases, store_path, EmbedSettings(workers=0, axes=("axial",)))
    rewindowed = run_embed(cases, store_path, EmbedSettings(workers=0, axes=("axial",), window=(200.0, 100.0)))
    assert rewindowed.slices_computed == 5 and "window" in rewindowed.messages[0]
    case = EmbeddingStore(store_path).case(stored_slices(store_path).popitem()[0])
    assert case.window == (200.0, 100.0) and case.attrs["window_source"] == "given"
    resized = run_embed(cases, store_path, EmbedSettings(workers=0, axes=("axial",), window=(200.0, 100.0),
                                                         input_size=128))
    assert resized.slices_computed == 5 and "encoder input" in resized.messages[0]


def test_another_model_invalidates_the_case(a_case_folder, tmp_path, monkeypatch):
    import MVAComputeLib.embed_job as embed_job
    store_path = tmp_path / "store.zarr"
    cases = cases_from_path(a_case_folder)[:1]
    run_embed(cases, store_path, EmbedSettings(workers=0, axes=("axial",)))
    real = embed_job.encoder_identity
    monkeypatch.setattr(embed_job, "encoder_identity", lambda engine: {**real(engine), "weights_sha256": "0" * 64})
    other = run_embed(cases, store_path, EmbedSettings(workers=0, axes=("axial",)))
    assert other.slices_computed == 5 and "model 'tiny' (weights" in other.messages[0]


def test_a_project_embeds_only_the_cases_it_lists(tmp_path):
    from MVAWorkflowLib import security
    from MVAWorkflowLib.service import WorkflowService
    from MVAWorkflowLib.testing import write_case_volumes
    security.configure_hasher(time_cost=1, memory_cost_kib=1024)
    try:
        url = f"sqlite:///{tmp_path / 'workflow.db'}"
        service = WorkflowService.open(url)
        service.create_first_admin("ada", "correct horse battery")
        token = service.login("ada", "correct horse battery").token
        project = service.create_project(token, "Brains", storage_root=str(tmp_path / "storage"))
        write_case_volumes(tmp_path / "listed", names=("one", "two"))
        write_case_volumes(tmp_path / "listed" / "not_added_later", names=("three",))
        service.add_cases(token, project.id, str(tmp_path / "listed"))
        service.database.dispose()
    finally:
        security.configure_hasher()
    cases = cases_from_project(str(tmp_path / "workflow.db"), "Brains")
    assert [case.name for case in cases] == ["one", "two"]
    summary = run_embed(cases, tmp_path / "store.zarr", EmbedSettings(workers=0, axes=("axial",)))
    assert summary.cases == 2 and summary.slices_computed == 12
    names = {EmbeddingStore(tmp_path / "store.zarr").case(d).attrs["case_name"] for d in stored_slices(
        tmp_path / "store.zarr")}
    assert names == {"one", "two"}


def logic_on(headless, path, engine, store=None):
    from MVABridgeLib.volumes import add_volume_node
    array, ijk_to_ras = read_volume(path)
    volume = add_volume_node(headless.scene, array, ijk_to_ras)
    segmentation, (segment_id,) = add_segmentation(headless, volume)
    session = SegmentEditorSession(volume, segmentation, segment_id, headless.scene)
    logic = SegmentAnythingLogic(session.bridge, engine, "tiny", embedding_store=store)
    return logic, volume, segmentation, segment_id


def test_the_logic_uses_a_stored_embedding_exactly_like_a_fresh_one(headless, a_case_folder, tmp_path):
    from MVABridgeLib.slice_geometry import SlicePlane
    store_path = tmp_path / "store.zarr"
    run_embed(cases_from_path(a_case_folder), store_path, INLINE)
    path = str(a_case_folder / "alpha.nrrd")
    stored_engine = engine_for_spec("tiny")
    encoded = []
    original = stored_engine.compute_embedding
    stored_engine.compute_embedding = lambda image: encoded.append(1) or original(image)
    logic, volume, segmentation, segment_id = logic_on(headless, path, stored_engine, store_path)
    window = logic.current_window_level()
    plane = SlicePlane.for_anatomical_axis("axial", 2, MATRIX, (5, 24, 20))
    logic.add_point(plane, (12, 10))
    from_store = segment_mask_in_volume(segmentation, segment_id, volume).astype(bool)
    assert encoded == [] and logic.stored.hits == 1 and "1 slices used" in logic.status()

    fresh_logic, fresh_volume, fresh_segmentation, fresh_id = logic_on(headless, path, engine_for_spec("tiny"))
    fresh_logic.window_level = window  # the store's embedding window, as the stored logic used
    fresh_logic.add_point(plane, (12, 10))
    fresh = segment_mask_in_volume(fresh_segmentation, fresh_id, fresh_volume).astype(bool)
    assert from_store.any() and np.array_equal(from_store, fresh)


def test_opening_a_stored_case_does_the_store_work_so_the_first_click_only_reads_its_record(
        headless, a_case_folder, tmp_path, monkeypatch):
    from MVABridgeLib.slice_geometry import SlicePlane
    from SegmentAnythingLib import stored_embeddings
    from SegmentAnythingLib.algorithms import sam_embedding_store
    store_path = tmp_path / "store.zarr"
    run_embed(cases_from_path(a_case_folder)[:1], store_path, INLINE)
    engine = engine_for_spec("tiny")
    warmed, original_warm_up = [], engine.warm_up
    engine.warm_up = lambda grid: warmed.append(grid) or original_warm_up(grid)
    logic, *_ = logic_on(headless, str(a_case_folder / "alpha.nrrd"), engine, store_path)
    logic.current_window_level()  # case open: the store's window
    grid = EmbeddingStore(store_path).case(next(iter(stored_slices(store_path)))).axis("k").embeddings.shape[-1]
    assert warmed == [grid] and len(engine.cache) == 0  # the decoder ran once, nothing was cached

    calls = []
    for name in ("axis", "checksum_table", "read"):
        owner = sam_embedding_store.CaseRecords if name == "axis" else sam_embedding_store.AxisRecords
        original = getattr(owner, name)
        monkeypatch.setattr(owner, name, lambda self, *a, _o=original, _n=name, **k: calls.append(_n) or _o(
            self, *a, **k))
    monkeypatch.setattr(stored_embeddings, "volume_digest", lambda *a: calls.append("digest"))
    logic.add_point(SlicePlane.for_anatomical_axis("axial", 3, MATRIX, (5, 24, 20)), (12, 10))
    assert logic.stored.hits == 1 and "axis" not in calls and "digest" not in calls and calls.count("read") == 1
    assert warmed == [grid]


def test_the_logic_says_why_it_embeds_on_demand(headless, a_case_folder, tmp_path):
    from MVABridgeLib.slice_geometry import SlicePlane, slice_to_ras_for
    store_path = tmp_path / "store.zarr"
    run_embed(cases_from_path(a_case_folder)[:1], store_path, EmbedSettings(workers=0, axes=("axial",)))
    logic, volume, *_ = logic_on(headless, str(a_case_folder / "alpha.nrrd"), engine_for_spec("tiny"), store_path)
    work = logic.bridge.work_volume()
    coronal = SlicePlane.for_anatomical_axis("coronal", 3, MATRIX, (5, 24, 20))
    logic.slice_key(coronal)
    assert "axis j of this volume was not embedded" in logic.stored.reason
    tilted = slice_to_ras_for("axial", (10.0, -5.0, 7.0))
    tilted[:3, :3] = tilted[:3, :3] @ np.array([[1, 0, 0], [0, 0.96, -0.28], [0, 0.28, 0.96]])
    logic.slice_key(SlicePlane.voxel_aligned(tilted, work.index_to_ras, work.shape))
    assert "oblique" in logic.stored.reason
    logic.window_level = (50.0, 20.0)
    logic.slice_key(SlicePlane.for_anatomical_axis("axial", 1, MATRIX, (5, 24, 20)))
    assert "window" in logic.stored.reason
    from MVABridgeLib.volumes import add_volume_node
    finer = add_volume_node(headless.scene, np.zeros((10, 24, 20), np.int16), MATRIX @ np.diag([1, 1, 0.5, 1]))
    segmentation, (segment_id,) = add_segmentation(headless, volume, reference_node=finer)
    resampled = SegmentAnythingLogic(SegmentEditorSession(volume, segmentation, segment_id, headless.scene).bridge,
                                     engine_for_spec("tiny"), "tiny", embedding_store=store_path)
    resampled.slice_key(SlicePlane.for_anatomical_axis("axial", 1, MATRIX @ np.diag([1, 1, 0.5, 1]), (10, 24, 20)))
    assert "no stored embeddings for this volume" in resampled.stored.reason
    other, *_ = logic_on(headless, str(a_case_folder / "beta.nrrd"), engine_for_spec("tiny"), store_path)
    other.slice_key(SlicePlane.for_anatomical_axis("axial", 1, MATRIX, (5, 24, 20)))
    assert "no stored embeddings for this volume" in other.stored.reason
    assert volume_digest(*read_volume(str(a_case_folder / "alpha.nrrd"))) in EmbeddingStore(store_path).case_digests()


def test_the_desktop_controller_reads_the_store_beside_the_volume_file(headless, a_case_folder, tmp_path):
    from MVABridgeLib.slice_geometry import SlicePlane
    from MVAControllersLib.sam_engines import DEFAULTS, SettingsEngineSource
    from MVAControllersLib.segment_anything_controller import SegmentAnythingController
    from SegmentAnythingLib.algorithms.sam_embedding_store import DEFAULT_STORE_NAME
    run_embed(cases_from_path(a_case_folder)[:1], a_case_folder / DEFAULT_STORE_NAME,
              EmbedSettings(workers=0, axes=("axial",)))
    engine = engine_for_spec("tiny")
    logic, volume, *_ = logic_on(headless, str(a_case_folder / "alpha.nrrd"), engine)
    storage = headless.scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(a_case_folder / "alpha.nrrd"))
    volume.SetAndObserveStorageNodeID(storage.GetID())
    engines = SettingsEngineSource(lambda name: {**DEFAULTS, "Prefetch": False}[name])
    controller = SegmentAnythingController(logic.bridge, engines)
    desktop_logic = controller.ensure_logic(engine)
    desktop_logic.add_point(SlicePlane.for_anatomical_axis("axial", 3, MATRIX, (5, 24, 20)), (12, 10))
    assert desktop_logic.stored.hits == 1 and desktop_logic.stored.reason == ""
    broken = SettingsEngineSource(
        lambda name: {**DEFAULTS, "Prefetch": False, "EmbeddingStore": str(tmp_path / "nothing")}[name])
    assert "No embedding store" in SegmentAnythingController(logic.bridge, broken).ensure_logic(
        engine_for_spec("tiny")).status()


def test_the_browser_takes_the_store_beside_its_cases_through_the_same_controller(headless, a_case_folder):
    from MVABridgeLib.slice_geometry import SlicePlane
    from MVAComputeLib.embed_cases import default_store_for
    from MVAControllersLib.segment_anything_controller import SegmentAnythingController
    from MVAWebLib.tool_controllers import SamOptions, WebSamEngines
    assert default_store_for([str(a_case_folder / "alpha.nrrd")]) is None  # nothing embedded yet
    run_embed(cases_from_path(a_case_folder)[:1], a_case_folder / "mva-embeddings.zarr",
              EmbedSettings(workers=0, axes=("axial",)))
    found = default_store_for([str(a_case_folder / "alpha.nrrd"), str(a_case_folder / "beta.nrrd")])
    assert found == str(a_case_folder / "mva-embeddings.zarr")
    engines = WebSamEngines(SamOptions(model="tiny", embedding_store=found))
    logic, *_ = logic_on(headless, str(a_case_folder / "alpha.nrrd"), engine_for_spec("tiny"))
    web_logic = SegmentAnythingController(logic.bridge, engines).ensure_logic(engines.load())
    web_logic.add_point(SlicePlane.for_anatomical_axis("axial", 4, MATRIX, (5, 24, 20)), (12, 10))
    assert web_logic.stored.hits == 1


def test_mva_embed_on_the_command_line_prints_its_summary_and_resumes(a_case_folder, tmp_path, capsys):
    from MVACommandLineLib.cli import main
    arguments = ["embed", "--cases", str(a_case_folder), "--model", "tiny", "--store", str(tmp_path / "s.zarr"),
                 "--workers", "0", "--axes", "axial", "--window", "300,120"]
    assert main(arguments) == 0
    first = capsys.readouterr()
    assert "10 embedded" in first.out and "embed [" in first.err
    assert main(arguments) == 0
    assert "0 embedded, 10 already stored" in capsys.readouterr().out
    assert main(["embed", "--cases", str(tmp_path / "missing"), "--model", "tiny", "--workers", "0"]) == 2


def stored_folder(parent, name, seed):
    """A folder holding one volume file and its own store beside it (axial slices)."""
    from SegmentAnythingLib.algorithms.sam_embedding_store import DEFAULT_STORE_NAME
    folder = parent / name
    folder.mkdir()
    write_volume(str(folder / f"{name}.nrrd"), a_volume(seed), MATRIX)
    run_embed(cases_from_path(folder), folder / DEFAULT_STORE_NAME, EmbedSettings(workers=0, axes=("axial",)))
    return folder / f"{name}.nrrd", folder / DEFAULT_STORE_NAME


def volume_from_file(headless, path):
    from MVABridgeLib.volumes import add_volume_node
    volume = add_volume_node(headless.scene, *read_volume(str(path)))
    storage = headless.scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    volume.SetAndObserveStorageNodeID(storage.GetID())
    return volume


def test_the_desktop_follows_the_selected_volume_to_its_own_store_and_looks_it_up_when_it_is_selected(
        headless, tmp_path, monkeypatch):
    from controller_scene import event, slice_node

    from MVAControllersLib.sam_engines import DEFAULTS, SettingsEngineSource
    from MVAControllersLib.segment_anything_controller import SegmentAnythingController
    from SegmentAnythingLib import stored_embeddings
    (alpha_path, alpha_store), (beta_path, beta_store) = (stored_folder(tmp_path, "alpha", 1),
                                                          stored_folder(tmp_path, "beta", 2))
    alpha, beta = volume_from_file(headless, alpha_path), volume_from_file(headless, beta_path)
    segmentation, (segment_id,) = add_segmentation(headless, alpha)
    session = SegmentEditorSession(alpha, segmentation, segment_id, headless.scene)
    engines = SettingsEngineSource(lambda name: {**DEFAULTS, "Prefetch": False}[name])
    engines.engine = engine = engine_for_spec("tiny")  # the model is loaded (the module's Load button)
    encoded, compute = [], engine.compute_embedding
    engine.compute_embedding = lambda image: encoded.append(1) or compute(image)
    controller = SegmentAnythingController(session.bridge, engines)
    centre_ras = (MATRIX @ [10, 12, 2, 1])[:3]
    view = slice_node("axial", centre_ras)

    assert controller.case_opened(view).message == ""  # the effect calls it when a volume is selected
    first = controller.logic.stored
    assert first.path == str(alpha_store) and first.case_for(session.bridge.work_volume())[0] is not None

    session.editor_node.SetAndObserveSourceVolumeNode(beta)  # another case, from another folder
    digests = []
    original_digest = stored_embeddings.volume_digest
    monkeypatch.setattr(stored_embeddings, "volume_digest", lambda *a: digests.append(1) or original_digest(*a))
    controller.case_opened(view)
    logic = controller.logic
    assert logic.stored.path == str(beta_store) and first not in engine.cache._sources
    assert digests == [1]  # the new case's store work happened at selection, not at the click
    assert logic.stored.hits == 1  # and the record of the slice in view was read and prepared then
    controller.handle(event("press", view, centre_ras))
    assert digests == [1] and logic.stored.hits == 1 and encoded == [] and logic.stored.reason == ""
    assert session.bridge.selected_mask().any()
