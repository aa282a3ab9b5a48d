"""A separate process saving one annotation again and again (run by test_workflow_save_integrity.py).

Environment: MVA_WORKER_DB (database URL), MVA_WORKER_TOKEN (session token; never on the command line),
MVA_WORKER_CASE, MVA_WORKER_WRITER (index), MVA_WORKER_SAVES, MVA_WORKER_MODE ("expected": pass the version
last read, conflicts allowed; "blind": no version), MVA_WORKER_GO (a file to wait for before the first save),
MVA_WORKER_PAUSE ("after-write": stop between writing the revision file and committing it on the last save;
"in-write": stop while the temporary file is being written). Prints one JSON line per committed save.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "SegmentAnythingMVA"))

import numpy as np  # noqa: E402

from MVAWorkflowLib import security, service_annotations, storage  # noqa: E402
from MVAWorkflowLib.errors import ConflictError  # noqa: E402
from MVAWorkflowLib.service import WorkflowService  # noqa: E402
from MVAWorkflowLib.storage import Labelmap  # noqa: E402

SHAPE_KJI = (6, 8, 10)
MATRIX = np.diag([0.8, 0.9, 2.0, 1.0])
TAG_BITS = 20


def tagged_labelmap(writer, save):
    """A labelmap whose first voxels spell (writer, save) in binary (label 2 = 1 bit), the rest label 1."""
    array = np.ones(SHAPE_KJI, np.uint8)
    tag = writer * 1000 + save
    flat = array.reshape(-1)
    for bit in range(TAG_BITS):
        flat[bit] = 2 if tag >> bit & 1 else 0
    return Labelmap(array, MATRIX)


def read_tag(labelmap):
    """(writer, save) from a labelmap made by `tagged_labelmap`."""
    flat = labelmap.array_kji.reshape(-1)
    tag = sum(1 << bit for bit in range(TAG_BITS) if flat[bit] == 2)
    return divmod(tag, 1000)


def pause_forever(message):
    print(json.dumps({"paused": message}), flush=True)
    time.sleep(120)


def main():
    security.configure_hasher(time_cost=1, memory_cost_kib=1024)
    service = WorkflowService.open(os.environ["MVA_WORKER_DB"], migrate=False, clean_up=False)
    token = os.environ["MVA_WORKER_TOKEN"]
    case_id, writer = int(os.environ["MVA_WORKER_CASE"]), int(os.environ["MVA_WORKER_WRITER"])
    saves, mode = int(os.environ["MVA_WORKER_SAVES"]), os.environ.get("MVA_WORKER_MODE", "blind")
    pause = os.environ.get("MVA_WORKER_PAUSE")
    go = os.environ.get("MVA_WORKER_GO")
    print(json.dumps({"ready": writer}), flush=True)
    while go and not os.path.exists(go):
        time.sleep(0.01)
    user_id = service.whoami(token).id
    for save in range(saves):
        if pause and save == saves - 1:
            if pause == "after-write":
                real_write = service_annotations.write_labelmap

                def write_then_stop(path, labelmap):
                    checksum = real_write(path, labelmap)
                    pause_forever("after-write")
                    return checksum
                service_annotations.write_labelmap = write_then_stop
            else:
                real_image_write = storage.sitk.WriteImage

                def stop_in_write(image, path, *args):
                    real_image_write(image, path, *args)
                    pause_forever("in-write")
                storage.sitk.WriteImage = stop_in_write
        expected = None
        if mode == "expected":
            expected = service.get_case(token, case_id).assignment_of(user_id).version
        try:
            info = service.save_annotation(token, case_id, tagged_labelmap(writer, save), expected_version=expected)
        except ConflictError:
            print(json.dumps({"writer": writer, "save": save, "conflict": True}), flush=True)
            continue
        print(json.dumps({"writer": writer, "save": save, "revision": info.revision}), flush=True)
    service.database.dispose()


if __name__ == "__main__":
    main()
