"""DICOM helpers for export: a CT-like series from a volume (for cases that are not DICOM) and DICOM SEG
(highdicom) of a labelmap on such a series."""
import datetime as _dt
import os

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from MVAWorkflowLib.errors import InvalidInputError

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def _to_int16(array_kji):
    array = np.asarray(array_kji)
    if np.issubdtype(array.dtype, np.integer) and array.min() >= -32768 and array.max() <= 32767:
        return array.astype(np.int16), 1.0, 0.0
    low, high = float(array.min()), float(array.max())
    slope = (high - low) / 65000.0 if high > low else 1.0
    stored = np.round((array - low) / slope - 32500.0).astype(np.int16)
    return stored, slope, low + 32500.0 * slope


def write_dicom_series(array_kji, ijk_to_ras, folder, patient_id="MVA", series_description="MVA volume"):
    """Write a volume as one single-frame CT Image Storage file per slice (k), geometry kept.

    Parameters
    ----------
    array_kji : ndarray, shape (K, J, I)
    ijk_to_ras : ndarray, shape (4, 4)
    folder : str
        Created if missing; files `slice0000.dcm`, ...

    Returns
    -------
    list of str
        File paths, in k order.
    """
    os.makedirs(folder, exist_ok=True)
    ijk_to_lps = LPS_TO_RAS @ np.asarray(ijk_to_ras, float)
    spacing = np.linalg.norm(ijk_to_lps[:3, :3], axis=0)
    row_direction, column_direction = ijk_to_lps[:3, 0] / spacing[0], ijk_to_lps[:3, 1] / spacing[1]
    stored, slope, intercept = _to_int16(array_kji)
    study, series, frame_of_reference = generate_uid(), generate_uid(), generate_uid()
    today = _dt.date.today().strftime("%Y%m%d")
    paths = []
    for k in range(stored.shape[0]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CT_IMAGE_STORAGE, meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = f"{patient_id}^", patient_id, "", ""
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame_of_reference
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = today
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = "000000"
        ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "1", "", ""
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 1, k + 1
        ds.SeriesDescription, ds.Manufacturer = series_description, "SegmentAnythingMVA"
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        ds.PositionReferenceIndicator = ""
        ds.ImagePositionPatient = [float(v) for v in (ijk_to_lps @ [0.0, 0.0, k, 1.0])[:3]]
        ds.ImageOrientationPatient = [float(v) for v in (*row_direction, *column_direction)]
        ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]
        ds.SliceThickness = float(spacing[2])
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = stored.shape[1], stored.shape[2]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = f"{slope:.6g}", f"{intercept:.6g}", "HU"
        ds.KVP = ""
        ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
        path = os.path.join(folder, f"slice{k:04d}.dcm")
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_dicom_seg(labelmap, labels, source_files, path, series_description="MVA annotation"):
    """Write a labelmap as a DICOM SEG (highdicom, binary segments, one per label present in `labels`).

    Parameters
    ----------
    labelmap : storage.Labelmap
        On the grid of the source series: `array_kji[k]` covers `source_files[k]`.
    labels : list of service_base.LabelInfo
        Name, terminology code and colour of each label value.
    source_files : list of str
        The DICOM series, in the order SimpleITK reads it (the order of k).

    Raises
    ------
    InvalidInputError
        The labelmap does not have one slice per source file or their rows / columns.
    """
    import highdicom as hd
    datasets = [pydicom.dcmread(f) for f in source_files]
    array = labelmap.array_kji
    if array.shape != (len(datasets), datasets[0].Rows, datasets[0].Columns):
        raise InvalidInputError(f"Labelmap shape {array.shape} does not match the DICOM series "
                                f"({len(datasets)} slices of {datasets[0].Rows}x{datasets[0].Columns})")
    descriptions, segment_array = [], np.zeros(array.shape, np.uint16)
    for number, label in enumerate(labels, start=1):
        segment_array[array == label.value] = number
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=label.name,
            segmented_property_category=hd.sr.CodedConcept(label.category_code_value, label.code_scheme,
                                                           label.category_code_meaning),
            segmented_property_type=hd.sr.CodedConcept(label.code_value or str(label.value), label.code_scheme
                                                       if label.code_value else "99MVA", label.code_meaning),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL))
    segmentation = hd.seg.Segmentation(
        source_images=datasets, pixel_array=segment_array,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=descriptions,
        series_instance_uid=hd.UID(), series_number=100, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="SegmentAnythingMVA", manufacturer_model_name="Medical Volume Annotator",
        software_versions="0.1", device_serial_number="1", series_description=series_description,
        omit_empty_frames=False)
    segmentation.save_as(path)
    return path
