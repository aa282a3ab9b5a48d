"""`mva demo` (README command 1) end to end: files desktop Slicer opens, one non-empty segment per tool run."""
from MVABridgeLib.headless_scene import create_headless_scene
from MVABridgeLib.node_io import load_segmentation_node, load_volume_node
from MVABridgeLib.segments import segment_mask_in_volume
from MVACommandLineLib.demo import run_demo


def test_demo_writes_volume_segmentation_and_pictures(tmp_path):
    lines = []
    result = run_demo(str(tmp_path), log=lines.append)
    scene = create_headless_scene()
    volume = load_volume_node(scene.scene, result["volume"])
    segmentation = load_segmentation_node(scene.scene, result["segmentation"])
    names = [segmentation.GetSegmentation().GetNthSegment(n).GetName()
             for n in range(segmentation.GetSegmentation().GetNumberOfSegments())]
    assert {"White matter (Smart Brush)", "White matter 3D (Smart Propagation)", "Grey matter (Smart Regions)"} <= \
        set(names)
    for n, name in enumerate(names):
        mask = segment_mask_in_volume(segmentation, segmentation.GetSegmentation().GetNthSegmentID(n), volume)
        assert mask.sum() > 1000, name
    assert (tmp_path / "overview.png").stat().st_size > 10_000 and (tmp_path / "effects.png").stat().st_size > 10_000
    assert sum("Dice" in line for line in lines) >= 3  # each tool step reports its Dice
