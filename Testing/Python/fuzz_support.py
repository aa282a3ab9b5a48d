"""Shared pieces of the fuzz suite (test_fuzz_inputs_*.py): a segmentation with work in it, a snapshot of
everything a failed action must leave alone, and `mva` run as a subprocess."""
import os
import subprocess
import sys

import numpy as np
from conftest import GEOMETRIES, ROOT, add_segmentation

import slicer
from MVABridgeLib.editor_session import SegmentEditorSession
from MVABridgeLib.image_data import array_view
from MVABridgeLib.segments import replace_segment_from_mask
from MVABridgeLib.volumes import add_volume_node

MATRIX = GEOMETRIES["lps_anisotropic"]
SHAPE_KJI = (8, 24, 24)


def disc_image(dtype=np.int16, inside=200, outside=20):
    _, j, i = np.mgrid[0:SHAPE_KJI[0], 0:SHAPE_KJI[1], 0:SHAPE_KJI[2]]
    disc = (j - 12) ** 2 + (i - 12) ** 2 < 6 ** 2
    return np.where(disc, inside, outside).astype(dtype)


class Work:
    """A volume and a segmentation whose segments A and B already hold a user's voxels; C is empty."""

    def __init__(self, headless, image=None, matrix=MATRIX):
        self.headless = headless
        self.image = disc_image() if image is None else image
        self.volume = add_volume_node(headless.scene, self.image, matrix, "Source")
        self.segmentation, self.ids = add_segmentation(headless, self.volume, ("A", "B", "C"))
        drawn_a = np.zeros(self.image.shape, np.uint8)
        drawn_a[2:5, 3:9, 4:10] = 1
        drawn_b = np.zeros(self.image.shape, np.uint8)
        drawn_b[5:7, 14:20, 14:20] = 1
        replace_segment_from_mask(self.segmentation, self.ids[0], drawn_a, matrix)
        self.drawn_voxels = int(drawn_a.sum())
        replace_segment_from_mask(self.segmentation, self.ids[1], drawn_b, matrix)
        self.session = SegmentEditorSession(self.volume, self.segmentation, self.ids[0], headless.scene)

    @property
    def bridge(self):
        return self.session.bridge

    def snapshot(self):
        """Every segment's stored labelmap (extent, label value, voxels), undo availability and scene size.

        Read from the segmentation's own storage, not through the volume, so it works on a broken volume node.
        """
        name = slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
        segments = []
        for segment_id in self.ids:
            segment = self.segmentation.GetSegmentation().GetSegment(segment_id)
            image = segment.GetRepresentation(name)
            voxels = array_view(image).copy() if image is not None else None
            segments.append((segment_id, segment.GetName(), image.GetExtent() if image is not None else None,
                             segment.GetLabelValue(), voxels))
        return segments, self.session.logic.CanUndo(), self.headless.scene.GetNumberOfNodes()

    def assert_unchanged(self, before):
        _, _, _, label_a, voxels_a = before[0][0]
        assert np.count_nonzero(voxels_a == label_a) == self.drawn_voxels, "segment A should hold the user's block"
        after = self.snapshot()
        assert after[1:] == before[1:], "undo history or scene changed"
        for (id_a, name_a, extent_a, label_a, voxels_a), (id_b, name_b, extent_b, label_b, voxels_b) in \
                zip(before[0], after[0]):
            assert (id_a, name_a, label_a) == (id_b, name_b, label_b)
            if voxels_a is None or voxels_b is None:
                assert voxels_a is None and voxels_b is None
                continue
            # an extent may be re-cropped without a change of content: compare the voxels of the label
            assert int(np.count_nonzero(voxels_a == label_a)) == int(np.count_nonzero(voxels_b == label_b))
            if extent_a == extent_b:
                assert np.array_equal(voxels_a, voxels_b)


def mva_command(*args):
    """argv running `mva` with this interpreter (the folders the package uses on its path)."""
    return [sys.executable, "-m", "MVACommandLineLib.cli", *[str(a) for a in args]]


def mva_environment(**extra):
    env = dict(os.environ)
    folders = [os.path.join(ROOT, name) for name in ("SegmentAnythingMVA", "SmartBrush", "SmartPropagation",
                                                      "WebAnnotator")]
    env["PYTHONPATH"] = os.pathsep.join(folders + [env.get("PYTHONPATH", "")])
    env.setdefault("ITK_GLOBAL_DEFAULT_THREADER", "Pool")
    env.update(extra)
    return env


# Runs each case in a process of its own, forked from one driver that imported `mva` once (starting `mva` costs
# seconds of imports on a loaded machine): exit status, output and tracebacks are those of a separate process.
_DRIVER = r"""
import io, json, os, sys, time, traceback
from MVACommandLineLib.arguments import check_eval_inputs  # noqa: F401  (imports shared by the cases)
from MVACommandLineLib.cli import build_parser, main
build_parser()
cases, timeout_s = json.load(sys.stdin)
results = {}
for name, (folder, output_path, argv) in cases.items():
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            os.chdir(folder)
            fd = os.open(output_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0), write_through=True)
            sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", buffering=0), write_through=True)
            try:
                code = main(argv)
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) or stop.code is None else 1
                if not isinstance(stop.code, int) and stop.code is not None:
                    print(stop.code, file=sys.stderr)
            except BaseException:
                traceback.print_exc()
                code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code or 0)
    deadline = time.monotonic() + timeout_s
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            results[name] = [os.waitstatus_to_exitcode(status), time.monotonic() - started]
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            results[name] = [124, time.monotonic() - started]
            break
        time.sleep(0.02)
print(json.dumps(results))
"""


def run_mva_cases(cases, output_folder, timeout_s=120, env=None):
    """{name: (exit code, stdout + stderr, seconds)} of `mva` runs given as {name: (argv, working folder)}."""
    import json
    jobs = {name: (str(folder), str(output_folder / f"{name}.out"), [str(a) for a in argv])
            for name, (argv, folder) in cases.items()}
    environment = mva_environment(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", **(env or {}))
    done = subprocess.run([sys.executable, "-c", _DRIVER], input=json.dumps([jobs, timeout_s]), env=environment,
                          capture_output=True, text=True, timeout=timeout_s * 2 + 60 * len(jobs))
    if done.returncode != 0:
        raise RuntimeError(f"the mva driver failed: {done.stderr[-2000:]}")
    codes = json.loads(done.stdout.strip().splitlines()[-1])
    return {name: (codes[name][0], open(jobs[name][1], encoding="utf-8", errors="replace").read(), codes[name][1])
            for name in jobs}


def run_mva(args, cwd, timeout_s=120, **env):
    """(exit code, stdout + stderr) of one `mva` run."""
    done = subprocess.run(mva_command(*args), cwd=cwd, env=mva_environment(**env), capture_output=True, text=True,
                          timeout=timeout_s)
    return done.returncode, done.stdout + done.stderr
