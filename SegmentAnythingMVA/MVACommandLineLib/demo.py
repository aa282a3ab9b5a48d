"""`mva demo`: the main job on the bundled default data (MNI T1 from nilearn's wheel).

Builds a real slicer-core scene, runs the smart tools through the same bridge the effects use, and writes the
volume (.nrrd), the segmentation (.seg.nrrd) and a PNG overlay into the output folder.
"""
import os
import time


from MVABridgeLib.editor_session import SegmentEditorSession
from MVABridgeLib.headless_scene import create_headless_scene
from MVABridgeLib.node_io import save_segmentation_node, save_volume_node
from MVABridgeLib.segments import segment_mask_in_volume
from MVABridgeLib.slice_geometry import SlicePlane
from MVABridgeLib.volumes import add_volume_node
from MVAEvaluationLib.datasets import load_mni
from MVAEvaluationLib.figures import overlay_png
from MVACommandLineLib.demo_steps import DEMO_STEPS


def run_demo(output_folder, log=print):
    os.makedirs(output_folder, exist_ok=True)
    started = time.perf_counter()
    data = load_mni("wm")
    truths = {"wm": data.truth, "gm": load_mni("gm").truth}
    headless = create_headless_scene()
    volume = add_volume_node(headless.scene, data.image, data.ijk_to_ras, "MNI152_T1")
    segmentation = headless.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Segmentation")
    segmentation.CreateDefaultDisplayNodes()
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    log(f"Loaded {volume.GetName()} {data.image.shape[::-1]} voxels (i, j, k) in {time.perf_counter() - started:.1f} s")

    results = []
    for step in DEMO_STEPS:
        segment_id = segmentation.GetSegmentation().AddEmptySegment(step.segment_name, step.segment_name,
                                                                    step.colour)
        session = SegmentEditorSession(volume, segmentation, segment_id, headless.scene)
        tic = time.perf_counter()
        summary = step.run(session, truths)
        seconds = time.perf_counter() - tic
        mask = segment_mask_in_volume(segmentation, segment_id, volume)
        session.close()
        if summary.startswith("skipped"):
            segmentation.GetSegmentation().RemoveSegment(segment_id)
            log(f"- {step.title}: {summary}")
            continue
        results.append((step, segment_id, summary))
        log(f"- {step.title}: {summary} ({int(mask.sum())} voxels, {seconds:.1f} s)")

    volume_path = save_volume_node(headless.scene, volume, os.path.join(output_folder, "MNI152_T1.nrrd"))
    segmentation_path = save_segmentation_node(headless.scene, segmentation,
                                               os.path.join(output_folder, "Segmentation.seg.nrrd"))
    png_path = os.path.join(output_folder, "overview.png")
    planes = []
    for orientation, index in (("axial", 97), ("coronal", 120), ("sagittal", 70)):
        plane = SlicePlane.for_anatomical_axis(orientation, index, data.ijk_to_ras, data.image.shape)
        masks = {step.segment_name: plane.sample(segment_mask_in_volume(segmentation, sid, volume),
                                                 data.ijk_to_ras, order=0) > 0
                 for step, sid, _ in results}
        planes.append((f"{orientation} {index}", plane.sample(data.image, data.ijk_to_ras), masks))
    overlay_png(png_path, planes, "SegmentAnythingMVA demo on the MNI152 T1 template")
    from MVAEvaluationLib.effect_pictures import effect_pictures
    pictures = effect_pictures(os.path.join(output_folder, "effects.png"))
    log(f"Wrote:\n  {volume_path}\n  {segmentation_path}\n  {png_path}\n  {pictures}")
    log(f"Open the .nrrd and .seg.nrrd files in 3D Slicer. Total {time.perf_counter() - started:.1f} s")
    headless.clear()
    return {"volume": volume_path, "segmentation": segmentation_path, "overlay": png_path,
            "steps": [(s.title, summary) for s, _, summary in results]}
