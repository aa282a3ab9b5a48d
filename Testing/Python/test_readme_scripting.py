"""The README's Scripting examples run as written, in one fresh process, and write what they say."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def scripting_blocks():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as stream:
        text = stream.read()
    section = text.split("## Scripting", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_readme_has_an_example_per_tool():
    code = "\n".join(scripting_blocks())
    for call in ("brush.add_stroke", "brush.apply()", "brush.predict_volume", "regions.click", "regions.drag",
                 "propagation.compute_preview", "propagation.apply()", "propagation.repropagate_from",
                 "sam.add_point", "sam.set_box", "sam.cycle_candidate", "sam.reset()"):
        assert call in code, call


def test_readme_scripting_examples_run(tmp_path):
    script = tmp_path / "scripting.py"
    checks = '''
from MVABridgeLib.segments import segment_mask_in_volume
mask = segment_mask_in_volume(segmentation, segment_id, volume)
assert mask[12].sum() > 0 and mask[14:].sum() > 0, "drawing and propagation are in the segment"
print("README examples ran")
'''
    script.write_text("\n".join(scripting_blocks()) + checks)
    env = dict(os.environ, ITK_GLOBAL_DEFAULT_THREADER="Pool",
               PYTHONPATH=os.pathsep.join(os.path.join(ROOT, d) for d in ("SegmentAnythingMVA", "SmartBrush",
                                                                         "SmartPropagation")))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "README examples ran" in done.stdout
    assert "voxels added" in done.stdout  # EditResult messages were printed
